// i18n.js: the console's words, Korean first.
"use strict";

const I18N = {
  ko: {
    title: "역학조사 콘솔", switch: "English", services: "서비스", central: "중앙 서버 주소",
    centralToken: "중앙 서버 조사관 토큰", issuer: "발급기관 주소", issuerToken: "발급기관 조사관 토큰",
    sealKey: "봉인 개인키 파일 (브라우저 안에서만 사용, 업로드하지 않음)",
    keyNone: "키가 없으면 안심콜·수기 연락처는 열 수 없습니다.", keyLoaded: "개인키를 불러왔습니다 (이 페이지 안에만 있습니다).",
    keyBad: "개인키 파일이 올바르지 않습니다.", caseLegend: "사례", caseId: "사례 번호", reason: "조회 사유",
    by: "확진자 지정", byPhone: "전화번호", byPerson: "등록 번호", byFacility: "시설과 시간 (시설 기반)",
    subject: "전화번호 / 등록 번호", facility: "시설 ID", from: "시작 (RFC 3339)", to: "끝 (RFC 3339)",
    days: "조회 일수", before: "방문 전 (분)", after: "방문 후 (분)", run: "조사 실행",
    timeline: "방문 시간표", contacts: "접촉자", csv: "CSV 내려받기",
    thNo: "#", thName: "이름", thPhone: "전화번호", thFacility: "시설", thMethod: "방법", thTimes: "방문 시각 (KST)", thOffset: "확진자 방문과의 차이",
    m_qr: "QR", m_phone: "안심콜", m_safe_number: "안심번호", m_manual: "수기",
    dayTags: "발급기관: 최근 {days}일의 일별 태그 조회", caseVisits: "중앙 서버: 일별 태그 {n}개의 방문 조회",
    coVisits: "중앙 서버: 확진자 방문 {n}건 주변의 방문 조회", facilityVisits: "중앙 서버: 시설의 방문 조회",
    opened: "봉인된 전화번호 {of}건 중 {n}건을 이 브라우저에서 열었습니다", resolving: "발급기관 {kid}: 방문 {n}건 확인",
    safeNumbers: "안심번호 {n}건 확인", building: "접촉자 목록 작성", done: "완료: 접촉자 {n}명",
    noSubject: "발급기관에 해당 전화번호나 등록 번호의 가입자가 없습니다.", error: "오류",
    summary: "확진자 방문 {cv}건, 주변 방문 {co}건, 미확인 {un}건", unnamed: "-", caseMark: "확진자 방문",
  },
  en: {
    title: "Investigator console", switch: "한국어", services: "Services", central: "Central URL",
    centralToken: "Central investigator token", issuer: "Issuer URL", issuerToken: "Issuer investigator token",
    sealKey: "Private sealing key file (used in this browser only, never uploaded)",
    keyNone: "Without the key, phone check-ins and handwritten numbers cannot be opened.", keyLoaded: "Private key loaded (it stays in this page).",
    keyBad: "That is not a private key file.", caseLegend: "Case", caseId: "Case id", reason: "Reason",
    by: "Case named by", byPhone: "Phone number", byPerson: "Person id", byFacility: "Facility and window (venue case)",
    subject: "Phone number / person id", facility: "Facility id", from: "From (RFC 3339)", to: "To (RFC 3339)",
    days: "Days back", before: "Before (min)", after: "After (min)", run: "Run trace",
    timeline: "Timeline", contacts: "Contacts", csv: "Download CSV",
    thNo: "#", thName: "Name", thPhone: "Phone", thFacility: "Facility", thMethod: "Method", thTimes: "Visits (KST)", thOffset: "Offset to the case",
    m_qr: "QR", m_phone: "phone call", m_safe_number: "safe number", m_manual: "handwritten",
    dayTags: "issuer: day tags of the last {days} days", caseVisits: "central: visits of {n} day tags",
    coVisits: "central: visits around {n} case visits", facilityVisits: "central: visits at the facility",
    opened: "opened {n} of {of} sealed phone numbers in this browser", resolving: "issuer {kid}: resolving {n} visits",
    safeNumbers: "resolving {n} safe numbers", building: "building the contact list", done: "done: {n} contacts",
    noSubject: "The issuer knows no visitor by that phone number or person id.", error: "Error",
    summary: "{cv} case visits, {co} visits around them, {un} unresolved", unnamed: "-", caseMark: "case visit",
  },
};

let lang = "ko";

function t(key, args) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.ko[key] || key;
  for (const [k, v] of Object.entries(args || {})) s = s.replace(`{${k}}`, v);
  return s;
}

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
}
