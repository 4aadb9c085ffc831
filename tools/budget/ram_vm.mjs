// Heap of the firmware in the 32-bit MicroPython WebAssembly VM, from an empty interpreter, with
// exactly the files one deployment mode puts on the board. tools/budget/ram.py runs it and
// prints the figures; see its docstring for what each one includes.
//
//   node tools/budget/ram_vm.mjs cycle --cycle cold --mode mpy --lib DIR [--romfs IMG]
//        --data DIR --sensors FILE
//       One cycle of tools/budget/ram_cycle.py, three fresh VMs: `record` (the .py tree and a
//       peer, whose datagrams are kept here, outside every VM), `probe` (the mode's files,
//       peer replayed: which modules the cycle imports) and `measure` (the same, stepped,
//       heap read before and inside each step). Prints one JSON line.
//   node tools/budget/ram_vm.mjs modules --mode mpy --lib DIR [--romfs IMG] --names a,b,c
//       Imports the modules one by one (dependencies first) into a fresh VM; prints the live
//       heap and qstr pool growth of each as one JSON line.
//
// --lib DIR holds lib/enosnb/*.mpy as `make deploy` copies them (mode mpy: copied into the VM's
// file system, /lib); --romfs IMG is a ROMFS image, handed to the VM as its ROM partition
// (outside the GC heap, mounted at /rom, as flash is on the board). --data DIR (secrets.json,
// board.json) becomes /data, --sensors the device maker's sensors.py in /.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

const HARNESS = ["ram_cycle.py", "cryptolib.py"];
// Standard modules this VM freezes as Python (heap when imported) that are built into the
// ESP32's image (no heap): imported before the baseline, their cost printed on its own.
const PORT_PY_MODULES = "os, time, binascii, io";
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const [command, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, "")] = rest[i + 1];

function fail(msg) { console.error("ram_vm: " + msg); process.exit(1); }

// One deterministic random stream per cycle, the same in every VM of that cycle.
class Stream {
  reset(seed) { this.state = crypto.createHash("sha256").update(seed).digest(); this.pool = Buffer.alloc(0); }
  take(n) {
    while (this.pool.length < n) {
      this.state = crypto.createHash("sha256").update(this.state).digest();
      this.pool = Buffer.concat([this.pool, this.state]);
    }
    const out = this.pool.subarray(0, n);
    this.pool = this.pool.subarray(n);
    return Array.from(out);
  }
}

// The block cipher behind tools/budget/cryptolib.py (the VM's stand-in for the ESP32's): it
// gets addresses in the VM's memory, never objects (see cryptolib.py), and works in place.
// ctx holds the key at 0 and the CBC chaining value at 16, which it updates as cryptolib does.
function aes(mp, ctx, mode, src, n, dst, decrypt) {
  const heap = mp._module.HEAPU8;
  const key = Buffer.from(heap.subarray(ctx, ctx + 16));
  const iv = Buffer.from(heap.subarray(ctx + 16, ctx + 32));
  const input = Buffer.from(heap.subarray(src, src + n));
  const name = mode === 1 ? "aes-128-ecb" : "aes-128-cbc";
  const c = decrypt ? crypto.createDecipheriv(name, key, mode === 1 ? null : iv)
    : crypto.createCipheriv(name, key, mode === 1 ? null : iv);
  c.setAutoPadding(false);
  const out = Buffer.concat([c.update(input), c.final()]);
  heap.set(out, dst);
  if (mode === 2) heap.set(decrypt ? input.subarray(n - 16) : out.subarray(n - 16), ctx + 16);
  return 0;
}

async function vm({ romfs } = {}) {
  const cap = { on: false, lines: [] };
  const mp = await loadMicroPython({
    heapsize: 1024 * 1024,
    romfs,
    stdout: (s) => { if (cap.on) cap.lines.push(s); else process.stderr.write(s + "\n"); },
    stderr: (s) => process.stderr.write(s + "\n"),
  });
  mp.cap = cap;
  // Proxies fetched once: every new proxy adds an entry to the VM's proxy table (heap).
  const gc = mp.pyimport("gc");
  mp.collect = gc.collect;
  mp.memAlloc = gc.mem_alloc;
  mp.qstrInfo = mp.pyimport("micropython").qstr_info;
  mp.registerJsModule("_aesjs", { run: (ctx, mode, src, n, dst, decrypt) => aes(mp, ctx, mode, src, n, dst, decrypt) });
  return mp;
}

function mkdirs(mp, p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyIn(mp, src, dst, keep = () => true) {
  mkdirs(mp, dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__") continue;
    const s = path.join(src, ent.name), d = dst + "/" + ent.name;
    if (ent.isDirectory()) copyIn(mp, s, d, keep);
    else if (keep(ent.name)) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

// Files of one VM's /data, to start the next VM from the same flash.
function snapshot(mp, dir, out = {}) {
  for (const name of mp.FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    const p = dir + "/" + name;
    if (mp.FS.isDir(mp.FS.stat(p).mode)) snapshot(mp, p, out);
    else out[p] = mp.FS.readFile(p);
  }
  return out;
}

function restoreFiles(mp, files) {
  for (const [p, data] of Object.entries(files)) {
    mkdirs(mp, path.posix.dirname(p));
    mp.FS.writeFile(p, data);
  }
}

function modeFiles(mp) {
  if (opt.mode === "mpy") copyIn(mp, path.join(opt.lib, "lib"), "/lib", (n) => n.endsWith(".mpy"));
  else if (opt.mode !== "romfs") fail("--mode must be mpy or romfs");
}

function romfsImage() {
  return opt.mode === "romfs" ? new Uint8Array(fs.readFileSync(opt.romfs)) : undefined;
}

function qstrInfo(mp, names) {
  mp.cap.on = true; mp.cap.lines = [];
  if (names) mp.qstrInfo(1); else mp.qstrInfo();
  mp.cap.on = false;
  if (names) names.push(...mp.cap.lines.join("\n").split("\n").map((l) => /^Q\((.*)\)$/.exec(l.trim())).filter(Boolean).map((m) => m[1]));
  const m = /n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)/.exec(mp.cap.lines.join(" "));
  if (!m) fail("no qstr_info output");
  const [qstrs, strData, total] = m.slice(1).map(Number);
  return { qstrs, str_data: strData, pools: total - strData };
}

function host(role, stream, answers, modules) {
  let group = null, muted = false, taking = [];
  return {
    role, cycle: opt.cycle,
    urandom: (n) => stream.take(n),
    mute: (m) => { muted = m; },
    put: (hex) => { if (!muted) (group ||= []).push(hex); },
    end: () => { if (!muted) { answers.push(group || []); group = null; } },
    count: () => { taking = answers.shift(); if (!taking) fail("replay ran out of answers"); return taking.length; },
    next: () => taking.shift(),
    modules: () => modules,
  };
}

async function deviceVm(role, stream, answers, files, modules) {
  const mp = await vm({ romfs: romfsImage() });
  modeFiles(mp);
  restoreFiles(mp, files);
  mp.FS.writeFile("/sensors.py", fs.readFileSync(opt.sensors));
  copyIn(mp, path.join(ROOT, "tools", "budget"), "/harness", (n) => HARNESS.includes(n));
  mp.registerJsModule("_host", host(role, stream, answers, modules));
  // main.py runs from the flash root, where sensors.py is (the VM starts in /rom with ROMFS).
  mp.runPython("import os\nos.chdir('/')");
  return mp;
}

async function cycle() {
  const stream = new Stream();
  const answers = [];
  // record: the .py tree, host_tests/vm's peer, the cold cycle first where the cycle needs it.
  const a = await vm();
  copyIn(a, path.join(ROOT, "firmware", "lib"), "/lib");
  copyIn(a, path.join(ROOT, "host_tests", "vm"), "/host_tests/vm");
  copyIn(a, opt.data, "/data");
  a.FS.writeFile("/sensors.py", fs.readFileSync(opt.sensors));
  copyIn(a, path.join(ROOT, "tools", "budget"), "/harness", (n) => HARNESS.includes(n));
  a.registerJsModule("_host", host("record", stream, answers, ""));
  a.runPython("import sys\nsys.path.insert(0, '/harness')\nsys.path.insert(0, '/host_tests/vm')");
  stream.reset("prepare");
  a.pyimport("ram_cycle").prepare();
  const files = snapshot(a, "/data");
  stream.reset(opt.cycle);
  const sent = a.pyimport("ram_cycle").run_all();
  const recorded = JSON.stringify(answers);

  // probe: which firmware modules the cycle imports from this mode's files.
  stream.reset(opt.cycle);
  const b = await deviceVm("probe", stream, JSON.parse(recorded), files, "");
  b.runPython("import sys\nsys.path.insert(0, '/harness')");
  if (b.pyimport("ram_cycle").run_all() !== sent) fail("probe run differs from the recorded one");
  const modules = b.pyimport("ram_cycle").imported();

  // measure: empty interpreter, then this harness, then the steps.
  stream.reset(opt.cycle);
  const c = await deviceVm("measure", stream, JSON.parse(recorded), files, modules);
  const { collect, memAlloc } = c;
  collect();
  const empty = memAlloc();
  c.runPython(`import ${PORT_PY_MODULES}`);
  collect();
  const portModules = memAlloc() - empty;
  const names0 = [];
  const q0 = qstrInfo(c, names0);
  c.runPython("import sys\nsys.path.insert(0, '/harness')\nimport cryptolib\nimport ram_cycle");
  const drv = c.pyimport("ram_cycle");
  const run = drv.run_js;
  const names = drv.step_list().split(",");
  collect();
  const base = memAlloc();
  const qh = qstrInfo(c);
  const steps = [];
  let peak = 0, peakStep = null, afterImports = null, qi = null;
  for (const name of names) {
    for (;;) {
      collect();
      const before = memAlloc() - base;
      const r = run(name);
      const alloc = Math.floor(r / 2);
      steps.push({ name, live_before: before, alloc });
      if (before + alloc > peak) { peak = before + alloc; peakStep = name; }
      if (!(r & 1)) break;
    }
    if (name === "imports") {
      collect();
      afterImports = memAlloc() - base;
      qi = qstrInfo(c);
    }
  }
  collect();
  const end = memAlloc() - base;
  const namesEnd = [];
  const qe = qstrInfo(c, namesEnd);
  console.log(JSON.stringify({
    cycle: opt.cycle, mode: opt.mode, sent, modules: modules.split(","), empty,
    port_modules: portModules, harness: base - empty - portModules, harness_qstrs: qh.qstrs - q0.qstrs, after_imports: afterImports,
    peak, peak_step: peakStep, end, steps,
    qstr_pools: { base: qh.pools, after_imports: qi.pools, end: qe.pools },
    qstr_str_data: { base: qh.str_data, after_imports: qi.str_data },
    qstr_count: { base: qh.qstrs, after_imports: qi.qstrs, end: qe.qstrs },
    // The names interned after the port modules: the harness's own are told apart by ram.py.
    qstr_names: namesEnd.filter((q) => !names0.includes(q)),
  }));
}

async function modules() {
  const mp = await vm({ romfs: romfsImage() });
  modeFiles(mp);
  copyIn(mp, path.join(ROOT, "tools", "budget"), "/harness", (n) => n === "cryptolib.py");
  const { collect, memAlloc } = mp;
  collect();
  const empty = memAlloc();
  mp.runPython(`import ${PORT_PY_MODULES}\nimport sys\nsys.path.insert(0, '/harness')\nimport cryptolib\nsys.path.pop(0)`);
  collect();
  const base = memAlloc();
  let q = qstrInfo(mp);
  let last = base;
  const out = [];
  for (const name of opt.names.split(",")) {
    mp.runPython(`__import__(${JSON.stringify(name)})`);
    collect();
    const now = memAlloc();
    const q2 = qstrInfo(mp);
    out.push({ name, live: now - last, pools: q2.pools - q.pools, str_data: q2.str_data - q.str_data,
               qstrs: q2.qstrs - q.qstrs });
    last = now; q = q2;
  }
  console.log(JSON.stringify({ mode: opt.mode, empty, harness: base - empty, total: last - base,
                               modules: out }));
}

try {
  if (command === "cycle") await cycle();
  else if (command === "modules") await modules();
  else fail("command must be cycle or modules");
} catch (e) {
  if (e.name === "PythonError") fail(e.message);
  throw e;
}
