// kipass wallet: sign in (enrolment and one-time code), show a QR pass that refreshes
// before it expires, the holder's status in words, the personal safe number, and
// pre-issued offline passes for when the network is gone. Plain JavaScript, no build.
(function () {
  'use strict';

  var TOKEN_KEY = 'kipass.wallet.token';
  var LANG_KEY = 'kipass.wallet.lang';
  var DB_NAME = 'kipass-wallet';
  var OFFLINE_HOURS = 12;
  var OFFLINE_WINDOW = '5m';

  var texts = {
    ko: {
      'title': 'kipass 방역패스',
      'lang.switch': 'English',
      'lang.label': 'Switch to English',
      'signin.title': '본인 확인',
      'signin.send': '인증번호 받기',
      'signin.sent': '휴대전화로 보낸 인증번호 6자리를 입력하세요.',
      'signin.verify': '확인',
      'signin.back': '처음으로',
      'field.name': '이름',
      'field.phone': '휴대전화 번호',
      'field.phone.hint': '예: 010-1234-5678',
      'field.birth': '생년월일',
      'field.person': '예방접종 등록번호',
      'field.person.hint': '예방접종 기록에 적힌 번호 (예: R-0001)',
      'field.code': '인증번호',
      'wallet.title': 'QR 체크인',
      'wallet.refresh': 'QR 새로 받기',
      'wallet.status': '나의 접종·검사 정보',
      'wallet.safe': '개인안심번호',
      'wallet.safe.hint': '수기 출입명부에는 전화번호 대신 이 번호를 적으세요.',
      'wallet.offline': '오프라인 패스',
      'wallet.offline.none': '미리 받은 패스가 없습니다.',
      'wallet.offline.fetch': '오프라인 패스 미리 받기',
      'wallet.signout': '로그아웃',
      'qr.label': '방역패스 QR 코드. {until}까지 유효합니다. 출입 확인 기기에 보여 주세요.',
      'qr.none': 'QR 코드를 표시할 수 없습니다.',
      'countdown': '{s}초 남음',
      'countdown.sr': 'QR 코드가 {s}초 동안 유효합니다.',
      'countdown.new': '새 QR 코드가 표시되었습니다. {s}초 동안 유효합니다.',
      'countdown.expired': '만료됨 · 새로 받는 중',
      'stale': '접종 정보 확인 시각: {at} (최신 정보를 아직 확인하지 못했습니다)',
      'offline.banner': '오프라인: 미리 받은 패스를 보여 줍니다 ({until}까지 유효)',
      'offline.nopass': '오프라인: 지금 시간대의 미리 받은 패스가 없습니다. 연결되면 다시 시도합니다.',
      'offline.info': '미리 받은 패스 {n}개, {until}까지',
      'offline.fetching': '오프라인 패스를 받는 중...',
      'offline.failed': '오프라인 패스를 받지 못했습니다: {msg}',
      'error.network': '서버에 연결할 수 없습니다. 잠시 후 다시 시도하세요.',
      'error.name': '이름을 입력하세요.',
      'error.phone': '휴대전화 번호 형식이 올바르지 않습니다. 예: 010-1234-5678',
      'error.birth_date': '생년월일을 입력하세요.',
      'error.person_id': '등록번호와 생년월일이 예방접종 기록과 일치하지 않습니다.',
      'error.code': '인증번호가 맞지 않습니다. 남은 횟수: {left}',
      'error.registry': '예방접종 기록을 지금 확인할 수 없습니다. 잠시 후 다시 시도하세요.',
      'error.expired': '인증 시간이 지났습니다. 처음부터 다시 시도하세요.',
      'error.locked': '인증번호를 여러 번 틀렸습니다. 처음부터 다시 시도하세요.',
      'error.signedout': '다시 로그인해 주세요.'
    },
    en: {
      'title': 'kipass vaccine pass',
      'lang.switch': '한국어',
      'lang.label': '한국어로 보기',
      'signin.title': 'Verify your identity',
      'signin.send': 'Send me a code',
      'signin.sent': 'Enter the 6-digit code sent to your phone.',
      'signin.verify': 'Confirm',
      'signin.back': 'Start over',
      'field.name': 'Name',
      'field.phone': 'Mobile phone number',
      'field.phone.hint': 'For example 010-1234-5678',
      'field.birth': 'Date of birth',
      'field.person': 'Immunization record number',
      'field.person.hint': 'The number on your immunization record (e.g. R-0001)',
      'field.code': 'Code',
      'wallet.title': 'QR check-in',
      'wallet.refresh': 'Get a new QR code',
      'wallet.status': 'My vaccination and test status',
      'wallet.safe': 'Personal safe number',
      'wallet.safe.hint': 'Write this number instead of your phone number in handwritten entry logs.',
      'wallet.offline': 'Offline passes',
      'wallet.offline.none': 'No passes saved for offline use.',
      'wallet.offline.fetch': 'Save passes for offline use',
      'wallet.signout': 'Sign out',
      'qr.label': 'Vaccine pass QR code, valid until {until}. Show it to the venue\'s scanner.',
      'qr.none': 'No QR code can be shown.',
      'countdown': '{s} s left',
      'countdown.sr': 'The QR code is valid for {s} seconds.',
      'countdown.new': 'New QR code shown, valid for {s} seconds.',
      'countdown.expired': 'Expired · getting a new one',
      'stale': 'Vaccination record as of {at} (the latest could not be checked yet)',
      'offline.banner': 'Offline: showing a saved pass (valid until {until})',
      'offline.nopass': 'Offline: no saved pass for this time. Retrying when connected.',
      'offline.info': '{n} passes saved, until {until}',
      'offline.fetching': 'Saving offline passes...',
      'offline.failed': 'Could not save offline passes: {msg}',
      'error.network': 'Cannot reach the server. Try again in a moment.',
      'error.name': 'Enter your name.',
      'error.phone': 'Not a valid mobile number. For example 010-1234-5678.',
      'error.birth_date': 'Enter your date of birth.',
      'error.person_id': 'The record number and date of birth do not match an immunization record.',
      'error.code': 'Wrong code. Attempts left: {left}',
      'error.registry': 'The immunization registry cannot be checked now. Try again in a moment.',
      'error.expired': 'The verification expired. Please start over.',
      'error.locked': 'Too many wrong codes. Please start over.',
      'error.signedout': 'Please sign in again.'
    }
  };

  var lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'ko';
  var token = localStorage.getItem(TOKEN_KEY);
  var enrolmentId = null;
  var shown = null;          // {pass, deadline, ttl, expiresAt, offline}
  var lastStatus = null;     // the last status answer, to re-word on a language switch
  var serverOffset = 0;      // issuer clock minus this device's clock, in ms
  var refreshTimer = null;
  var offlineChecked = false;

  function $(id) { return document.getElementById(id); }

  function t(key, vars) {
    var s = texts[lang][key] || texts.ko[key] || key;
    return s.replace(/\{(\w+)\}/g, function (_, k) { return vars && k in vars ? vars[k] : ''; });
  }

  // kst formats an instant as KST "YYYY-MM-DD HH:MM" (or with seconds).
  function kst(ms, seconds) {
    var opts = { timeZone: 'Asia/Seoul', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    if (seconds) { opts.second = '2-digit'; }
    return new Intl.DateTimeFormat('sv-SE', opts).format(new Date(ms));
  }

  function applyLang() {
    document.documentElement.lang = lang;
    document.title = t('title');
    var nodes = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = t(nodes[i].getAttribute('data-i18n')); }
    var b = $('lang');
    b.textContent = t('lang.switch');
    b.setAttribute('lang', lang === 'ko' ? 'en' : 'ko');
    b.setAttribute('aria-label', t('lang.label'));
    if (lastStatus) { renderStatus(lastStatus); }
    if (shown) { labelQR(); }
    updateOfflineInfo();
  }

  function notice(msg) {
    var n = $('notice');
    n.textContent = msg || '';
    n.hidden = !msg;
  }

  // api calls the issuer. A network failure rejects with err.network set.
  function api(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (body) { headers['Content-Type'] = 'application/json'; }
    if (token) { headers['Authorization'] = 'Bearer ' + token; }
    return fetch(path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined, cache: 'no-store' })
      .catch(function () { var e = new Error(t('error.network')); e.network = true; throw e; })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (data) {
          if (!res.ok) {
            var info = (data && data.error) || {};
            var e = new Error(info.message || res.statusText);
            e.status = res.status; e.code = info.code; e.field = info.field; e.reason = info.reason;
            throw e;
          }
          return data;
        });
      });
  }

  // ---- sign-in ----

  function showSignin() {
    $('wallet').hidden = true;
    $('signin').hidden = false;
    $('code-form').hidden = true;
    $('enrol-form').hidden = false;
    stopTimers();
  }

  function fieldInput(field) {
    return { name: $('name'), phone: $('phone'), birth_date: $('birth'), person_id: $('person'), code: $('code') }[field];
  }

  function showError(box, err) {
    var inputs = document.querySelectorAll('input[aria-invalid]');
    for (var i = 0; i < inputs.length; i++) { inputs[i].removeAttribute('aria-invalid'); }
    var msg = err.message;
    if (err.reason === 'registry_unavailable') { msg = t('error.registry'); }
    else if (err.reason === 'attempts_exhausted') { msg = t('error.locked'); }
    else if (err.status === 404 && box === 'code-error') { msg = t('error.expired'); }
    else if (err.field === 'code') { msg = t('error.code', { left: (/(\d+)\s*$/.exec(err.message) || [0, '?'])[1] }); }
    else if (err.field && texts[lang]['error.' + err.field]) { msg = t('error.' + err.field); }
    $(box).textContent = msg;
    var input = fieldInput(err.field);
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
  }

  function onEnrol(ev) {
    ev.preventDefault();
    $('enrol-error').textContent = '';
    var body = { name: $('name').value.trim(), phone: $('phone').value.trim(), birth_date: $('birth').value, person_id: $('person').value.trim() };
    var missing = ['name', 'phone', 'birth_date', 'person_id'].filter(function (k) { return !body[k]; })[0];
    if (missing) { showError('enrol-error', { field: missing, message: t('error.' + missing) }); return; }
    var btn = $('enrol-submit');
    btn.disabled = true;
    api('POST', '/v1/enrolments', body).then(function (r) {
      enrolmentId = r.enrolment_id;
      $('enrol-form').hidden = true;
      $('code-form').hidden = false;
      $('code').value = '';
      $('code').focus();
    }, function (err) { showError('enrol-error', err); }).then(function () { btn.disabled = false; });
  }

  function onCode(ev) {
    ev.preventDefault();
    $('code-error').textContent = '';
    var code = $('code').value.trim();
    var btn = $('code-submit');
    btn.disabled = true;
    api('POST', '/v1/enrolments/' + encodeURIComponent(enrolmentId) + '/verify', { code: code }).then(function (r) {
      token = r.wallet_token;
      localStorage.setItem(TOKEN_KEY, token);
      showWallet();
    }, function (err) {
      showError('code-error', err);
      if (err.status === 404 || err.status === 403) { setTimeout(showSignin, 2500); }
    }).then(function () { btn.disabled = false; });
  }

  // ---- the pass ----

  function showWallet() {
    $('signin').hidden = true;
    $('wallet').hidden = false;
    notice('');
    loadPass();
    loadSafeNumber();
    updateOfflineInfo();
  }

  function stopTimers() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
  }

  function labelQR() {
    var qr = $('qr');
    qr.setAttribute('aria-label', shown ? t('qr.label', { until: kst(shown.expiresAt, true).slice(11) }) : t('qr.none'));
  }

  // show puts a pass on screen and schedules the next one before it expires.
  function show(p, offline) {
    var qr = $('qr');
    qr.innerHTML = p.qr_svg;
    qr.setAttribute('data-pass', p.pass);
    qr.classList.remove('expired');
    var left = p.left;
    shown = { pass: p.pass, deadline: performance.now() + left, ttl: left, expiresAt: p.expiresAt, offline: offline };
    labelQR();
    $('cd-sr').textContent = t('countdown.new', { s: Math.ceil(left / 1000) });
    tick();
    // Refresh ahead of expiry: five seconds before, or a third of the life of a short pass.
    var lead = Math.min(5000, left / 3);
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadPass, Math.max(250, left - lead));
  }

  function tick() {
    if (!shown) { return; }
    var ms = shown.deadline - performance.now();
    var s = Math.max(0, Math.ceil(ms / 1000));
    $('cd-visual').textContent = s > 0 ? t('countdown', { s: s }) : t('countdown.expired');
    if (s === 0) { $('qr').classList.add('expired'); }
    var sr = t('countdown.sr', { s: s });
    if (s === 10 && $('cd-sr').textContent !== sr) { $('cd-sr').textContent = sr; }
  }

  function loadPass() {
    clearTimeout(refreshTimer);
    api('GET', '/v1/pass').then(function (p) {
      serverOffset = Date.parse(p.now) - Date.now();
      $('offline-banner').hidden = true;
      show({ pass: p.pass, qr_svg: p.qr_svg, left: p.expires_in_ms, expiresAt: Date.parse(p.expires_at) }, false);
      lastStatus = p;
      renderStatus(p);
      maybeRefreshOffline();
    }, function (err) {
      if (err.status === 401) { signOut(t('error.signedout')); return; }
      // The network or the issuer is down: fall back to a pre-issued pass.
      showOffline().then(function (until) {
        clearTimeout(refreshTimer); // show() scheduled one too: keep a single retry
        refreshTimer = setTimeout(loadPass, until ? Math.min(until, 15000) : 5000);
      });
    });
  }

  function renderStatus(p) {
    var ul = $('status');
    ul.textContent = '';
    (p.status || []).forEach(function (line) {
      var li = document.createElement('li');
      li.textContent = lang === 'ko' ? line.ko : line.en;
      ul.appendChild(li);
    });
    var stale = $('stale');
    stale.hidden = !p.facts_stale;
    stale.textContent = p.facts_stale ? t('stale', { at: kst(Date.parse(p.facts_as_of)) }) : '';
  }

  function loadSafeNumber() {
    api('GET', '/v1/safe-number').then(function (r) {
      $('safe-number').textContent = r.safe_number;
      localStorage.setItem('kipass.wallet.safe', r.safe_number);
    }, function () {
      $('safe-number').textContent = localStorage.getItem('kipass.wallet.safe') || '-';
    });
  }

  function signOut(msg) {
    token = null;
    shown = null;
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem('kipass.wallet.safe');
    withStore('readwrite', function (st) { st.clear(); });
    showSignin();
    notice(msg || '');
  }

  // ---- offline passes, kept in IndexedDB ----

  function openDB() {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) { reject(new Error('no IndexedDB')); return; }
      var req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = function () { req.result.createObjectStore('passes', { keyPath: 'not_before' }); };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }

  // withStore runs fn on the passes store and resolves with what fn's request returns.
  function withStore(mode, fn) {
    return openDB().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction('passes', mode);
        var out = fn(tx.objectStore('passes'));
        tx.oncomplete = function () { resolve(out && out.result); db.close(); };
        tx.onerror = function () { reject(tx.error); db.close(); };
      });
    }).catch(function () { return undefined; });
  }

  function allOffline() {
    return withStore('readonly', function (st) { return st.getAll(); }).then(function (all) { return all || []; });
  }

  function fetchOffline() {
    var info = $('offline-info');
    info.textContent = t('offline.fetching');
    return api('GET', '/v1/passes/offline?hours=' + OFFLINE_HOURS + '&window=' + OFFLINE_WINDOW).then(function (r) {
      serverOffset = Date.parse(r.now) - Date.now();
      localStorage.setItem('kipass.wallet.offset', String(serverOffset));
      return withStore('readwrite', function (st) {
        st.clear();
        r.passes.forEach(function (p) {
          st.put({ not_before: Date.parse(p.not_before), expires_at: Date.parse(p.expires_at), pass: p.pass, qr_svg: p.qr_svg });
        });
      });
    }).then(updateOfflineInfo, function (err) {
      info.textContent = t('offline.failed', { msg: err.message });
    });
  }

  function issuerNow() {
    var off = serverOffset || Number(localStorage.getItem('kipass.wallet.offset') || 0);
    return Date.now() + off;
  }

  function updateOfflineInfo() {
    allOffline().then(function (all) {
      var now = issuerNow();
      var left = all.filter(function (p) { return p.expires_at > now; });
      var info = $('offline-info');
      if (!left.length) { info.textContent = t('wallet.offline.none'); return; }
      var last = Math.max.apply(null, left.map(function (p) { return p.expires_at; }));
      info.textContent = t('offline.info', { n: left.length, until: kst(last) });
    });
  }

  // maybeRefreshOffline tops up the saved passes once per visit, if the visitor saved
  // some before and fewer than two hours are left.
  function maybeRefreshOffline() {
    if (offlineChecked) { return; }
    offlineChecked = true;
    allOffline().then(function (all) {
      if (!all.length) { return; }
      var last = Math.max.apply(null, all.map(function (p) { return p.expires_at; }));
      if (last - issuerNow() < 2 * 3600 * 1000) { fetchOffline(); }
    });
  }

  // showOffline shows the saved pass of the current window and resolves with the ms
  // until it ends (0 when there is none).
  function showOffline() {
    return allOffline().then(function (all) {
      var now = issuerNow();
      var p = all.filter(function (x) { return x.not_before <= now && now < x.expires_at; })[0];
      var banner = $('offline-banner');
      banner.hidden = false;
      if (!p) {
        banner.textContent = t('offline.nopass');
        if (!shown || shown.offline) {
          shown = null;
          $('qr').innerHTML = '';
          $('qr').removeAttribute('data-pass');
          labelQR();
          $('cd-visual').textContent = '';
        }
        return 0;
      }
      banner.textContent = t('offline.banner', { until: kst(p.expires_at, true).slice(11) });
      show({ pass: p.pass, qr_svg: p.qr_svg, left: p.expires_at - now, expiresAt: p.expires_at }, true);
      return p.expires_at - now;
    });
  }

  // ---- start ----

  // takeToken signs in with a wallet token given as /wallet#token=..., and takes it
  // out of the address bar.
  // Another visitor's token drops the saved passes and safe number of the previous one.
  function takeToken() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) { return false; }
    var prev = token;
    token = decodeURIComponent(m[1]);
    localStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
    if (prev && prev !== token) {
      localStorage.removeItem('kipass.wallet.safe');
      withStore('readwrite', function (st) { st.clear(); });
    }
    return true;
  }

  function start() {
    takeToken();
    window.addEventListener('hashchange', function () {
      if (takeToken()) { shown = null; lastStatus = null; offlineChecked = false; showWallet(); }
    });
    $('lang').addEventListener('click', function () {
      lang = lang === 'ko' ? 'en' : 'ko';
      localStorage.setItem(LANG_KEY, lang);
      applyLang();
    });
    $('enrol-form').addEventListener('submit', onEnrol);
    $('code-form').addEventListener('submit', onCode);
    $('code-back').addEventListener('click', showSignin);
    $('refresh').addEventListener('click', loadPass);
    $('offline-fetch').addEventListener('click', fetchOffline);
    $('signout').addEventListener('click', function () { signOut(''); });
    window.addEventListener('online', loadPass);
    setInterval(tick, 250);
    applyLang();
    if (token) { showWallet(); } else { showSignin(); }
    if ('serviceWorker' in navigator) {
      navigator.serviceWorker.register('/wallet/sw.js', { scope: '/wallet' }).catch(function () {});
    }
  }

  start();
})();
