// The OpenWhisk Node.js conventions on top of QuickJS, evaluated once per action before its
// source (and so part of the snapshot). `native` holds the few host functions written in Rust:
// write(fd, text), exit(code), random(). Returns the harness the Rust side drives:
//   load(wrapped, main)  evaluates the action's wrapped source and resolves its entry point;
//   run(params, env)     calls it, returning a Promise that always resolves, to {line} (the
//                        result as one JSON line) or {error, line} (the error message, and the
//                        result line `{"error": message}`);
//   nextTimer()          ms until the earliest timer is due, or -1 when none is pending;
//   fireTimers()         runs every timer that is due.
(function (native) {
  "use strict";

  function inspect(value, seen) {
    if (typeof value === "string") return JSON.stringify(value);
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}`.trimEnd() : String(value);
    if (typeof value === "function") return `[Function: ${value.name || "(anonymous)"}]`;
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "symbol" || value === undefined || value === null) return String(value);
    if (typeof value !== "object") return String(value);
    seen = seen || [];
    if (seen.includes(value)) return "[Circular]";
    seen.push(value);
    try {
      if (Array.isArray(value)) return `[ ${value.map((v) => inspect(v, seen)).join(", ")} ]`;
      if (value instanceof Map) return `Map(${value.size}) { ${[...value].map(([k, v]) => `${inspect(k, seen)} => ${inspect(v, seen)}`).join(", ")} }`;
      if (value instanceof Set) return `Set(${value.size}) { ${[...value].map((v) => inspect(v, seen)).join(", ")} }`;
      if (value instanceof Date) return value.toISOString();
      const keys = Object.keys(value);
      if (keys.length === 0) return "{}";
      const key = (k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
      return `{ ${keys.map((k) => `${key(k)}: ${inspect(value[k], seen)}`).join(", ")} }`;
    } finally {
      seen.pop();
    }
  }

  function format(args) {
    if (args.length === 0) return "";
    let out = "";
    let rest = args;
    if (typeof args[0] === "string" && args[0].includes("%")) {
      let i = 1;
      out = args[0].replace(/%[sdifjoO%]/g, (m) => {
        if (m === "%%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        switch (m) {
          case "%s": return typeof a === "string" ? a : inspect(a);
          case "%d": case "%i": return String(parseInt(a, 10));
          case "%f": return String(parseFloat(a));
          case "%j": try { return JSON.stringify(a); } catch (e) { return "[Circular]"; }
          default: return inspect(a);
        }
      });
      rest = args.slice(i);
    } else {
      out = typeof args[0] === "string" ? args[0] : inspect(args[0]);
      rest = args.slice(1);
    }
    for (const a of rest) out += " " + (typeof a === "string" ? a : inspect(a));
    return out;
  }

  const out = (...args) => native.write(1, format(args) + "\n");
  const err = (...args) => native.write(2, format(args) + "\n");
  globalThis.console = {
    log: out, info: out, debug: out,
    error: err, warn: err, trace: err,
    dir: (v) => out(inspect(v)),
  };

  // Timers: a list the Rust event loop drains (it sleeps until the earliest is due).
  let timers = [];
  let nextId = 1;
  function addTimer(fn, ms, args, repeat) {
    if (typeof fn !== "function") throw new TypeError("The \"callback\" argument must be a function");
    const delay = Math.max(0, Number(ms) || 0);
    const t = { id: nextId++, at: Date.now() + delay, delay, fn, args, repeat };
    timers.push(t);
    return t.id;
  }
  function clearTimer(id) {
    timers = timers.filter((t) => t.id !== (typeof id === "object" && id ? id.id : id));
  }
  globalThis.setTimeout = (fn, ms, ...args) => addTimer(fn, ms, args, false);
  globalThis.setInterval = (fn, ms, ...args) => addTimer(fn, ms, args, true);
  globalThis.setImmediate = (fn, ...args) => addTimer(fn, 0, args, false);
  globalThis.clearTimeout = clearTimer;
  globalThis.clearInterval = clearTimer;
  globalThis.clearImmediate = clearTimer;
  if (typeof globalThis.queueMicrotask !== "function") {
    globalThis.queueMicrotask = (fn) => { Promise.resolve().then(fn); };
  }

  // Math.random is re-seeded from WASI's random_get in every activation (the engine's own seed
  // would be frozen in the snapshot, the same for every activation).
  Math.random = native.random;

  function notAvailable(name) {
    return new Error(`Cannot find module '${name}': wisp runs JavaScript actions in QuickJS inside WebAssembly, without Node.js's built-in modules`);
  }
  const require = (name) => { throw notAvailable(String(name)); };

  globalThis.process = {
    env: {},
    argv: ["quickjs", "action.js"],
    platform: "wasi",
    arch: "wasm32",
    versions: { quickjs: native.engineVersion },
    exitCode: undefined,
    exit(code) { native.exit(code === undefined ? (process.exitCode | 0) : code | 0); },
    nextTick(fn, ...args) { queueMicrotask(() => fn(...args)); },
    hrtime: Object.assign((prev) => {
      const ns = BigInt(Math.round(performance.now() * 1e6));
      const t = [Number(ns / 1000000000n), Number(ns % 1000000000n)];
      if (!prev) return t;
      let s = t[0] - prev[0], n = t[1] - prev[1];
      if (n < 0) { s -= 1; n += 1e9; }
      return [s, n];
    }, { bigint: () => BigInt(Math.round(performance.now() * 1e6)) }),
    stdout: { write: (s) => { native.write(1, String(s)); return true; } },
    stderr: { write: (s) => { native.write(2, String(s)); return true; } },
  };
  if (typeof globalThis.performance === "undefined") {
    const t0 = Date.now();
    globalThis.performance = { now: () => Date.now() - t0, timeOrigin: t0 };
  }

  let entry = null;

  function lookup(root, path) {
    let v = root;
    for (const part of path.split(".")) {
      if (v === null || v === undefined) return undefined;
      v = v[part];
    }
    return v;
  }

  function describe(e) {
    if (e instanceof Error) return String(e);
    if (e === undefined) return "The action's Promise was rejected without a reason.";
    if (typeof e === "string") return e;
    try { return JSON.stringify(e); } catch (_) { return String(e); }
  }

  function failure(e) {
    const error = describe(e);
    const frames = e instanceof Error && e.stack
      ? e.stack.split("\n").filter((l) => l.trim() && !l.includes("wisp-prelude.js"))
      : [];
    native.write(2, [error, ...frames].join("\n") + "\n");
    return { error, line: JSON.stringify({ error }) };
  }

  return {
    // `wrapped` is `function (exports, require, module, __filename, __dirname) { <source>
    // ; return [<main>] }`: the source runs in a function scope as OpenWhisk's runner evaluates it.
    load(wrapped, main) {
      const module = { exports: {}, id: ".", filename: "action.js", loaded: false };
      globalThis.module = module;
      globalThis.exports = module.exports;
      const [scoped] = wrapped(module.exports, require, module, "action.js", "/");
      module.loaded = true;
      let f = scoped;
      if (typeof f !== "function") f = lookup(module.exports, main);
      if (typeof f !== "function" && main === "main" && typeof module.exports === "function") f = module.exports;
      if (typeof f !== "function") f = lookup(globalThis, main);
      if (typeof f !== "function") throw new TypeError(`Action entrypoint '${main}' is not a function.`);
      entry = f;
    },
    run(params, env) {
      process.env = env;
      let p;
      try {
        p = Promise.resolve(entry(JSON.parse(params)));
      } catch (e) {
        p = Promise.reject(e);
      }
      return p
        .then((r) => {
          const line = JSON.stringify(r === undefined ? {} : r);
          return { line: line === undefined ? String(line) : line };
        }, failure)
        .catch(failure);
    },
    nextTimer() {
      if (timers.length === 0) return -1;
      const at = Math.min(...timers.map((t) => t.at));
      return Math.max(0, at - Date.now());
    },
    fireTimers() {
      const now = Date.now();
      const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at || a.id - b.id);
      for (const t of due) {
        if (t.repeat) t.at = now + Math.max(1, t.delay);
        else timers = timers.filter((x) => x !== t);
        t.fn(...t.args);
      }
    },
  };
})
