// Words of the scanner page: Korean by default, English on the switch. The words for
// decision bases and refusals come from the Go module (policy.BasisText and the
// scanner's refusals), not from here.

const words = {
  ko: {
    'loading': '불러오는 중…',
    'enroll.title': '스캐너 등록',
    'enroll.help': '시설 관리자에게 받은 등록 코드를 입력하세요. 한 번만 하면 됩니다.',
    'enroll.code': '등록 코드',
    'enroll.name': '기기 이름 (선택)',
    'enroll.submit': '등록',
    'enroll.bad': '등록 코드가 올바르지 않거나, 이미 사용되었거나, 만료되었습니다.',
    'enroll.offline': '서버에 연결할 수 없습니다. 등록은 인터넷 연결이 필요합니다.',
    'enroll.failed': '등록하지 못했습니다: {0}',
    'ready': 'QR을 보여 주세요',
    'reader.label': 'QR 리더기 입력',
    'reader.submit': '확인',
    'party': '일행 인원',
    'manual.title': '수기 출입 기록 (휴대전화가 없는 방문자)',
    'manual.safe': '개인안심번호 (숫자 4자리 + 한글 2자)',
    'manual.phone': '전화번호 (이 기기에서 암호화되어 방역당국만 열람)',
    'manual.save': '기록',
    'manual.saved': '출입 기록을 저장했습니다 ({0}).',
    'manual.badSafe': '개인안심번호는 숫자 4자리와 한글 2자입니다.',
    'manual.badPhone': '전화번호를 확인해 주세요.',
    'rejected.title': '서버가 거부한 기록',
    'outcome.PASS': '통과',
    'outcome.FAIL': '미충족',
    'outcome.NOT_REQUIRED': '적용 제외',
    'outcome.REFUSED': '확인 불가',
    'sub.PASS': '입장 가능',
    'sub.FAIL': '방역패스 미충족 · 입장 불가',
    'sub.NOT_REQUIRED': '방역패스 없이 입장 가능',
    'grace': '계도기간 (과태료 미부과)',
    'clockWarning': '스캐너 시계를 확인해 주세요.',
    'saveError': '⚠ 이 기기에 기록하지 못했습니다. 수기로 기록해 주세요.',
    'net.online': '연결됨',
    'net.offline': '오프라인',
    'net.unreachable': '서버 연결 안 됨',
    'outbox': '전송 대기 {0}건',
    'outbox.tip': '스캔 기록은 이 기기에 안전하게 보관되고, 연결되면 자동으로 전송됩니다.',
    'rejected': '거부된 기록 {0}건',
    'bundle.none': '신뢰목록 없음',
    'bundle': '신뢰목록 v{0} · {1} 확인',
    'bundle.never': '신뢰목록 v{0} · 확인 못 함',
    'server.ok': '서버 정상',
    'server.degraded': '업로드 지연',
    'server.down': '서버 장애',
    'server.unknown': '서버 상태 확인 중',
    'server.unreachable': '서버 응답 없음',
    'banner.degraded': '업로드가 지연되고 있습니다. 스캔 기록은 이 기기에 안전하게 보관됩니다.',
    'banner.down': '중앙 서버 장애입니다. 스캔은 계속할 수 있고, 기록은 이 기기에 보관 후 자동 전송됩니다.',
    'banner.unreachable': '서버에 연결할 수 없습니다. 스캔은 계속할 수 있고, 기록은 이 기기에 보관 후 자동 전송됩니다.',
    'banner.unauthorized': '이 기기의 등록이 취소되었거나 인식되지 않습니다. 기록은 보관 중입니다. 관리자에게 문의하세요.',
    'skew.fast': '기기 시계가 {0} 빠름 · 서버 시각 사용',
    'skew.slow': '기기 시계가 {0} 느림 · 서버 시각 사용',
    'skew.query': '시연 시각 {0}',
    'scans': '오늘 스캔 {0}건',
    'camera.off': '카메라를 사용할 수 없습니다. QR 리더기나 수기 기록을 사용하세요.',
    'camera.on': '카메라로 QR을 읽는 중',
    'ago.now': '방금',
    'ago.min': '{0}분 전',
    'ago.hour': '{0}시간 전',
    'ago.day': '{0}일 전',
    'dur.day': '{0}일',
    'dur.hour': '{0}시간',
    'dur.min': '{0}분',
    'method.qr': 'QR',
    'method.safe_number': '안심번호',
    'method.manual': '전화번호',
    'fatal': '스캐너를 시작할 수 없습니다: {0}',
    'switch': 'English',
  },
  en: {
    'loading': 'Loading…',
    'enroll.title': 'Enrol this scanner',
    'enroll.help': 'Type the enrollment code the facility manager gave you. You do this once.',
    'enroll.code': 'Enrollment code',
    'enroll.name': 'Device name (optional)',
    'enroll.submit': 'Enrol',
    'enroll.bad': 'The enrollment code is wrong, already used or expired.',
    'enroll.offline': 'Cannot reach the server. Enrolment needs a connection.',
    'enroll.failed': 'Enrolment failed: {0}',
    'ready': 'Show your QR code',
    'reader.label': 'QR reader input',
    'reader.submit': 'Check',
    'party': 'Party size',
    'manual.title': 'Handwritten log (visitor without a phone)',
    'manual.safe': 'Personal safe number (4 digits + 2 Hangul syllables)',
    'manual.phone': 'Phone number (sealed on this device; only the health authority can open it)',
    'manual.save': 'Record',
    'manual.saved': 'Visit recorded ({0}).',
    'manual.badSafe': 'A personal safe number is 4 digits and 2 Hangul syllables.',
    'manual.badPhone': 'Check the phone number.',
    'rejected.title': 'Records the server rejected',
    'outcome.PASS': 'PASS',
    'outcome.FAIL': 'FAIL',
    'outcome.NOT_REQUIRED': 'NOT REQUIRED',
    'outcome.REFUSED': 'REFUSED',
    'sub.PASS': 'may enter',
    'sub.FAIL': 'does not meet the pass · may not enter',
    'sub.NOT_REQUIRED': 'may enter without the pass',
    'grace': 'grace period (no fines yet)',
    'clockWarning': "Check the scanner's clock.",
    'saveError': '⚠ Not recorded on this device: write the visit down by hand.',
    'net.online': 'online',
    'net.offline': 'offline',
    'net.unreachable': 'server unreachable',
    'outbox': '{0} to upload',
    'outbox.tip': 'Scans are kept safe on this device and uploaded when the connection returns.',
    'rejected': '{0} rejected',
    'bundle.none': 'no trust bundle',
    'bundle': 'trust bundle v{0} · checked {1}',
    'bundle.never': 'trust bundle v{0} · never checked',
    'server.ok': 'server ok',
    'server.degraded': 'uploads delayed',
    'server.down': 'server down',
    'server.unknown': 'checking server',
    'server.unreachable': 'server not answering',
    'banner.degraded': 'Uploads are delayed. Your scans are safe on this device.',
    'banner.down': 'The central server is down. Keep scanning: records stay on this device and upload by themselves.',
    'banner.unreachable': 'Cannot reach the server. Keep scanning: records stay on this device and upload by themselves.',
    'banner.unauthorized': 'This device is not recognised or was revoked. Records are kept. Call the operator.',
    'skew.fast': 'device clock {0} fast · using server time',
    'skew.slow': 'device clock {0} slow · using server time',
    'skew.query': 'demo time {0}',
    'scans': '{0} scans today',
    'camera.off': 'No camera: use a QR reader or the handwritten log.',
    'camera.on': 'Reading QR codes with the camera',
    'ago.now': 'just now',
    'ago.min': '{0} min ago',
    'ago.hour': '{0} h ago',
    'ago.day': '{0} days ago',
    'dur.day': '{0} d',
    'dur.hour': '{0} h',
    'dur.min': '{0} min',
    'method.qr': 'QR',
    'method.safe_number': 'safe number',
    'method.manual': 'phone',
    'fatal': 'The scanner cannot start: {0}',
    'switch': '한국어',
  },
};

let lang = 'ko';
try {
  if (localStorage.getItem('kipass-lang') === 'en') lang = 'en';
} catch (_) { /* storage disabled: Korean */ }

/** The current language, "ko" or "en". */
export function currentLang() { return lang; }

/** Sets the language and rewrites every element marked data-i18n. */
export function setLang(l) {
  lang = l === 'en' ? 'en' : 'ko';
  try { localStorage.setItem('kipass-lang', lang); } catch (_) { /* ignore */ }
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}

/** Returns the words for key in the current language, {0}, {1}... replaced by args. */
export function t(key, ...args) {
  const s = words[lang][key] ?? words.ko[key] ?? key;
  return s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));
}

/** Says how long ago a moment (ms since epoch) was, on the device clock. */
export function ago(ms) {
  const m = Math.floor((Date.now() - ms) / 60000);
  if (m < 1) return t('ago.now');
  if (m < 60) return t('ago.min', m);
  if (m < 48 * 60) return t('ago.hour', Math.floor(m / 60));
  return t('ago.day', Math.floor(m / 1440));
}

/** Writes the length of a duration (ms) in days, hours and minutes. */
export function duration(ms) {
  let m = Math.round(Math.abs(ms) / 60000);
  const d = Math.floor(m / 1440); m -= d * 1440;
  const h = Math.floor(m / 60); m -= h * 60;
  const parts = [];
  if (d) parts.push(t('dur.day', d));
  if (h) parts.push(t('dur.hour', h));
  if (m || !parts.length) parts.push(t('dur.min', m));
  return parts.join(' ');
}
