# OpenWhisk's Python action conventions, run once per action before its source (and so part of
# the snapshot). The Rust side calls _wisp_load once (at snapshot time) and _wisp_run per
# activation; each returns a string: "0" + result line, or "1" + error message + "\n" + line.
import json
import os
import sys
import traceback

_wisp_entry = None

# Line-buffered stdout, so print() lines and stderr lines reach the logs in the order written.
try:
    sys.stdout.reconfigure(line_buffering=True)
except (AttributeError, ValueError):
    pass


def _wisp_error_line(message):
    return "1" + message + "\n" + json.dumps({"error": message})


def _wisp_load(source, main):
    global _wisp_entry
    try:
        code = compile(source, "__main__.py", "exec")
        scope = {"__name__": "__main__", "__file__": "__main__.py", "__builtins__": __builtins__}
        exec(code, scope)
        entry = scope.get(main.split(".")[0])
        for part in main.split(".")[1:]:
            entry = getattr(entry, part, None)
        if not callable(entry):
            return "1" + f"Action entrypoint '{main}' is not a function."
        _wisp_entry = entry
        return "0"
    except BaseException as e:
        return "1" + "".join(traceback.format_exception(e)).rstrip()


def _wisp_run(params, env):
    # The environment is the activation's: replace what os saw when the snapshot was taken.
    data = os.environ._data
    data.clear()
    for k, v in env.items():
        data[os.environ.encodekey(k)] = os.environ.encodevalue(v)
    if "random" in sys.modules:
        sys.modules["random"].seed()
    try:
        result = _wisp_entry(json.loads(params))
        if result is None:
            result = {}
        line = json.dumps(result, ensure_ascii=False)
        out = "0" + line
    except SystemExit as e:
        out = _wisp_error_line(f"The action called sys.exit({e.code!r}).")
    except BaseException as e:
        traceback.print_exc()
        out = _wisp_error_line(f"{type(e).__name__}: {e}")
    sys.stdout.flush()
    sys.stderr.flush()
    return out
