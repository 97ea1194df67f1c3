// berth's DevTools bridge (compute API contract §3.20). The preview proxy
// injects it into the HTML pages it serves. Inside an iframe (the podex web
// app's preview panel) it forwards the page's console messages and its
// uncaught errors to the parent window with postMessage; outside an iframe,
// or when already installed, it does nothing. It reads nothing else,
// changes nothing else, and accepts no messages.
//
// Messages, in the shape the podex web app reads:
//   {source: "podex-devtools", type: "devtools:console", timestamp,
//    payload: {level, args: [{type, value}], url}}
//   {source: "podex-devtools", type: "devtools:error", timestamp,
//    payload: {type: "js_error", message, filename, lineno, colno, stack}
//          or {type: "unhandled_rejection", message, stack}}
// level is log, info, warn, error or debug; each argument is sent as its
// typeof and a string of at most 2000 characters.
(function () {
  'use strict';
  var parentWindow;
  try {
    if (window.parent === window || window.__berthDevTools) {
      return;
    }
    parentWindow = window.parent;
    Object.defineProperty(window, '__berthDevTools', { value: true });
  } catch (e) {
    return;
  }

  var MAX_TEXT = 2000;
  var busy = false; // console calls made while a message is built or sent are not forwarded

  // forward builds a message's payload and posts it to the parent.
  function forward(type, build) {
    if (busy) {
      return;
    }
    busy = true;
    try {
      parentWindow.postMessage({ source: 'podex-devtools', type: type, payload: build(), timestamp: Date.now() }, '*');
    } catch (e) {
      // The parent went away or refused the message: nothing to report to.
    } finally {
      busy = false;
    }
  }

  function clip(s) {
    return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) + '…' : s;
  }

  function describeElement(el) {
    var s = '<' + el.tagName.toLowerCase();
    if (el.id) {
      s += ' id="' + el.id + '"';
    }
    if (typeof el.className === 'string' && el.className) {
      s += ' class="' + el.className + '"';
    }
    return s + '>';
  }

  // describe renders one console argument as text.
  function describe(value) {
    try {
      switch (typeof value) {
        case 'string':
          return clip(value);
        case 'undefined':
          return 'undefined';
        case 'function':
          return '[Function: ' + (value.name || 'anonymous') + ']';
        case 'bigint':
          return value.toString() + 'n';
        case 'object':
          break;
        default:
          return clip(String(value)); // number, boolean, symbol
      }
      if (value === null) {
        return 'null';
      }
      // Not instanceof: errors and elements may come from another frame.
      if (Object.prototype.toString.call(value) === '[object Error]') {
        return clip(String(value.stack || value.name + ': ' + value.message));
      }
      if (value.nodeType === 1 && typeof value.tagName === 'string') {
        return clip(describeElement(value));
      }
      var seen = new WeakSet();
      var json = JSON.stringify(value, function (key, v) {
        if (typeof v === 'function') {
          return '[Function: ' + (v.name || 'anonymous') + ']';
        }
        if (typeof v === 'bigint') {
          return v.toString() + 'n';
        }
        if (typeof v === 'object' && v !== null) {
          if (seen.has(v)) {
            return '[Circular]';
          }
          seen.add(v);
        }
        return v;
      });
      return clip(json === undefined ? String(value) : json);
    } catch (e) {
      return Object.prototype.toString.call(value);
    }
  }

  ['log', 'info', 'warn', 'error', 'debug'].forEach(function (level) {
    var original = console[level];
    if (typeof original !== 'function') {
      return;
    }
    console[level] = function () {
      var values = arguments;
      forward('devtools:console', function () {
        var args = [];
        for (var i = 0; i < values.length; i++) {
          args.push({ type: typeof values[i], value: describe(values[i]) });
        }
        return { level: level, args: args, url: String(location.href) };
      });
      return original.apply(this, arguments);
    };
  });

  window.addEventListener('error', function (event) {
    forward('devtools:error', function () {
      var err = event.error;
      return {
        type: 'js_error',
        message: String(event.message || (err && err.message) || 'Script error'),
        filename: event.filename || null,
        lineno: event.lineno || null,
        colno: event.colno || null,
        stack: err && err.stack ? clip(String(err.stack)) : null
      };
    });
  });

  window.addEventListener('unhandledrejection', function (event) {
    forward('devtools:error', function () {
      var reason = event.reason;
      return {
        type: 'unhandled_rejection',
        message: reason && reason.message ? clip(String(reason.message)) : describe(reason),
        stack: reason && reason.stack ? clip(String(reason.stack)) : null
      };
    });
  });
})();
