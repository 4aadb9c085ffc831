// Runs firmware code inside the MicroPython WebAssembly VM (npm package
// @micropython/micropython-webassembly-pyscript) under Node.js.
//
//   node tools/mpvm/run.mjs --suite host_tests/vm [--only mod1,mod2] [--heap 262144]
//       imports every test_*.py module of the suite and calls each test_* function;
//       prints one line per test and "vm: N passed, N failed"; exits 1 on any failure.
//   node tools/mpvm/run.mjs --script path/to/file.py [--heap N] [-- args...]
//       runs one script with the firmware package importable (benchmarks use this);
//       sys.argv holds the args after "--".
//   node tools/mpvm/run.mjs --script file.py --steps
//       then calls the script's step() again and again, each in its own top-level call with a
//       gc.collect() before it, until step() returns a false value. The WebAssembly port can
//       collect garbage only between top-level calls (the wasm stack cannot be scanned), so
//       heap measurements need these boundaries.
//
// The VM's filesystem lives in memory, so the firmware package (firmware/lib), the test
// suite (host_tests/vm) and the test vectors (host_tests/vectors) are copied in at the same
// relative paths they have in the repository; tests find their data the same way on CPython.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const argv = process.argv.slice(2);
const opts = { heap: 1024 * 1024, only: null, suite: null, script: null, args: [] };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--") { opts.args = argv.slice(i + 1); break; }
  else if (a === "--suite") opts.suite = argv[++i];
  else if (a === "--script") opts.script = argv[++i];
  else if (a === "--steps") opts.steps = true;
  else if (a === "--heap") opts.heap = parseInt(argv[++i], 10);
  else if (a === "--only") opts.only = argv[++i].split(",");
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}
if (!opts.suite && !opts.script) { console.error("give --suite DIR or --script FILE"); process.exit(2); }

const mp = await loadMicroPython({
  heapsize: opts.heap,
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
function copyTree(src, dst, filter) {
  if (!fs.existsSync(src)) return;
  mkdirs(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__") continue;
    const s = path.join(src, ent.name), d = dst + "/" + ent.name;
    if (ent.isDirectory()) copyTree(s, d, filter);
    else if (!filter || filter(ent.name)) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
copyTree(path.join(ROOT, "firmware", "lib"), "/lib");
copyTree(path.join(ROOT, "host_tests", "vm"), "/host_tests/vm");
copyTree(path.join(ROOT, "host_tests", "vectors"), "/host_tests/vectors");
copyTree(path.join(ROOT, "host_tests", "corpus"), "/host_tests/corpus");

// The WebAssembly port has no os.urandom and no hardware RNG; the firmware's randomness shim
// (enosnb.rng) takes the host's CSPRNG instead, so the same code paths run.
mp.registerJsModule("_hostrng", { urandom: (n) => Array.from(crypto.randomBytes(n)) });

const preamble = `
import sys
sys.path.insert(0, '/lib')
sys.path.insert(0, '/host_tests/vm')
import _hostrng
import enosnb.rng
def _urandom(n):
    return bytes(_hostrng.urandom(n))
enosnb.rng.urandom = _urandom
`;

let failed = 0;
try {
  mp.runPython(preamble);
  if (opts.script) {
    mp.FS.writeFile("/main_script.py", fs.readFileSync(path.resolve(opts.script)));
    mp.runPython(`sys.argv[:] = ${JSON.stringify([opts.script, ...opts.args])}\n` +
      `_script_ns = {'__name__': '__main__'}\n` +
      `exec(open('/main_script.py').read(), _script_ns)`);
    if (opts.steps) {
      for (;;) {
        mp.runPython("import gc\ngc.collect()");
        mp.runPython("_more = _script_ns['step']()");
        if (!mp.globals.get("_more")) break;
      }
    }
  } else {
    const dir = path.resolve(opts.suite);
    let mods = fs.readdirSync(dir).filter((f) => /^test_.*\.py$/.test(f)).map((f) => f.slice(0, -3)).sort();
    if (opts.only) mods = mods.filter((m) => opts.only.includes(m));
    mp.runPython(`
import gc
_passed = 0
_failed = 0
def _run(modname):
    global _passed, _failed
    try:
        mod = __import__(modname)
    except Exception as e:
        _failed += 1
        print('FAIL', modname, '(import)')
        sys.print_exception(e)
        return
    for name in sorted(dir(mod)):
        if not name.startswith('test_'):
            continue
        fn = getattr(mod, name)
        if not callable(fn):
            continue
        try:
            fn()
            _passed += 1
            print('PASS', modname + '.' + name)
        except Exception as e:
            _failed += 1
            print('FAIL', modname + '.' + name)
            sys.print_exception(e)
        gc.collect()
`);
    for (const m of mods) mp.runPython(`_run(${JSON.stringify(m)})`);
    mp.runPython(`print('vm: %d passed, %d failed' % (_passed, _failed))`);
    failed = mp.globals.get("_failed");
    const passed = mp.globals.get("_passed");
    if (passed + failed === 0) { console.error("vm: no test ran"); failed = 1; }
  }
} catch (e) {
  if (e.name === "PythonError") {
    if (e.type !== "SystemExit") { console.error(e.message); failed = 1; }
  } else { throw e; }
}
process.exit(failed ? 1 : 0);
