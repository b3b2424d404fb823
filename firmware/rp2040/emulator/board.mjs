// The soundalert board image on an emulated RP2040 (rp2040js), with a PDM microphone model on
// its pins and an emulated USB host on its USB CDC.
//
//   node board.mjs --image soundalert.uf2 --audio in.s16 [options]
//
// Microphone: every falling edge of the mic clock pin (GPIO 3) puts the next bit of a
// second-order sigma-delta modulator on the data pin (GPIO 2), as a PDM MEMS microphone does;
// the modulator follows --audio (16 kHz mono s16le, linearly interpolated) on the emulated
// time line: sample 0 is heard when the firmware first clocks the mic, and sound goes on while
// the board is stalled or rebooting. After the audio: silence.
//
// Time: the core runs instruction by instruction (rp2040js counts Cortex-M0+ cycles); the PIO
// is stepped here at clk_sys / its clock divider (rp2040js runs it on a JS timer otherwise);
// while the core sleeps (WFI) time jumps to the next PIO step or timer alarm. --realtime keeps
// emulated time from running ahead of the wall clock (as a real board would not).
//
// USB host: enumerates the board (rp2040js's USBCDC), does not poll OUT transfers when it has
// nothing to send (a real host NAKs; rp2040js would answer zero-length packets in a busy loop)
// and asserts DTR only when told the port was opened ("open" on stdin; "close" drops it), or
// at once with --open.
//
// Watchdog: a watchdog timeout resets the chip: a fresh RP2040 with the same flash, keeping
// the watchdog's scratch and reason registers (which survive the reset on silicon). USB goes
// away and enumerates again, as a real board's does.
//
// stdin: "open", "close", "quit". stdout: one JSON object a line:
//   {"event": "usb", "state": "configured" | "gone", "at_s": ...}
//   {"event": "serial", "hex": "..."}              bytes the board sent on its CDC
//   {"event": "reset", "reason": "watchdog", "at_s": ...}
//   {"event": "profile", ...}                       with --profile, at the end
//   {"event": "end", "emulated_s": ..., "wall_s": ...}
//
// Options:
//   --bootrom FILE     RP2040 bootrom image (default: bootrom-b1.bin beside this file)
//   --stall-at S       freeze the microphone's PIO state machine at S s of the audio time line
//                      (the audio path stalls; the watchdog should reset the chip)
//   --end-at S         stop at S s of the audio time line (default: the audio's length + 2 s)
//   --profile FILE     a release manifest (manifest.json): count cycles in its symbols
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ConsoleLogger, LogLevel, Simulator, USBCDC } from 'rp2040js';
import { decodeBlock } from 'uf2';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FLASH_BASE = 0x10000000;
const MIC_CLOCK_PIN = 3;
const MIC_DATA_PIN = 2;
const AUDIO_HZ = 16000;
const WATCHDOG_BASE = 0x40058;
const CDC_DTR_RTS = 0x3;
const FRAME_S = 0.016;

const { values: opts } = parseArgs({
  options: {
    image: { type: 'string' },
    audio: { type: 'string' },
    bootrom: { type: 'string', default: path.join(HERE, 'bootrom-b1.bin') },
    'stall-at': { type: 'string' },
    'end-at': { type: 'string' },
    profile: { type: 'string' },
    realtime: { type: 'boolean', default: false },
    open: { type: 'boolean', default: false },
  },
});
if (!opts.image || !opts.audio) {
  process.stderr.write('usage: node board.mjs --image IMAGE.uf2 --audio AUDIO.s16 [options]\n');
  process.exit(2);
}

const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

function readFlashImage(file) {
  const uf2 = fs.readFileSync(file);
  const blocks = [];
  for (let offset = 0; offset + 512 <= uf2.length; offset += 512) {
    const { flashAddress, payload } = decodeBlock(uf2.subarray(offset, offset + 512));
    blocks.push([flashAddress - FLASH_BASE, payload]);
  }
  if (blocks.length === 0) throw new Error(`${file}: no UF2 blocks`);
  return blocks;
}

const bootromBytes = fs.readFileSync(opts.bootrom);
const bootrom = new Uint32Array(bootromBytes.buffer, bootromBytes.byteOffset, bootromBytes.length / 4);
const flashBlocks = readFlashImage(opts.image);
const audioBytes = fs.readFileSync(opts.audio);
const audio = new Int16Array(audioBytes.buffer, audioBytes.byteOffset, audioBytes.length >> 1);
const audioSeconds = audio.length / AUDIO_HZ;
let stallAt = opts['stall-at'] === undefined ? Infinity : Number(opts['stall-at']); // once
const endAt = opts['end-at'] === undefined ? audioSeconds + 2 : Number(opts['end-at']);

// ---- the microphone ----------------------------------------------------------------------
const mic = {
  startNanos: null, // emulated time of the first clock edge: audio time 0
  i1: 0,
  i2: 0,
  feedback: 0,
  sample(audioSeconds_) {
    const position = audioSeconds_ * AUDIO_HZ;
    const n = Math.floor(position);
    if (n < 0 || n + 1 >= audio.length) return 0;
    const frac = position - n;
    return ((1 - frac) * audio[n] + frac * audio[n + 1]) / 32768;
  },
  // Second-order sigma-delta: stable for inputs within about +-0.9 of full scale.
  nextBit(x) {
    const input = x > 0.9 ? 0.9 : x < -0.9 ? -0.9 : x;
    this.i1 += input - this.feedback;
    this.i2 += this.i1 - this.feedback;
    const bit = this.i2 >= 0;
    this.feedback = bit ? 1 : -1;
    return bit;
  },
};

// ---- the chip ------------------------------------------------------------------------------
let board = null; // { sim, mcu, cdc, watchdog }
let baseNanos = 0; // emulated time before the current chip's clock started (resets)
let pioNext = Infinity;
let pioPeriod = 0;
let pioStalled = false;
let resetPending = false;
let hostOpen = opts.open;
let usbConfigured = false;
let serialOut = [];

const now = () => baseNanos + board.sim.clock.nanos; // emulated ns since the first boot
const audioTime = () => (mic.startNanos === null ? -1 : (now() - mic.startNanos) / 1e9);

function boot(carry) {
  const sim = new Simulator();
  const mcu = sim.rp2040;
  mcu.logger = new ConsoleLogger(LogLevel.Error);
  mcu.onBreak = (code) => {
    const where = `0x${mcu.core.PC.toString(16)}`;
    process.stderr.write(`breakpoint ${code} at ${where}, called from 0x${mcu.core.LR.toString(16)}` +
      ' (a BKPT in the ROM: the image called the ROM float library, which is not in this ROM)\n');
    process.exit(3);
  };
  mcu.loadBootrom(bootrom);
  for (const [offset, payload] of flashBlocks) mcu.flash.set(payload, offset);
  for (const pio of mcu.pio) pio.run = () => {}; // stepped here, on emulated time
  const watchdog = mcu.peripherals[WATCHDOG_BASE];
  if (carry) {
    watchdog.scratchData.set(carry.scratch);
    watchdog.reason = carry.reason;
  }
  watchdog.onWatchdogTrigger = () => {
    watchdog.alarm.enable = false; // or rp2040js re-arms it at once, forever
    resetPending = true;
  };
  mcu.gpio[MIC_CLOCK_PIN].addListener((state) => {
    if (state !== 0) return; // the mic drives its next bit after a falling clock edge
    const t = now();
    if (mic.startNanos === null) mic.startNanos = t;
    mcu.gpio[MIC_DATA_PIN].setInputValue(mic.nextBit(mic.sample((t - mic.startNanos) / 1e9)));
  });
  const cdc = new USBCDC(mcu.usbCtrl);
  const setLineState = cdc.cdcSetControlLineState.bind(cdc);
  cdc.cdcSetControlLineState = () => setLineState(hostOpen ? CDC_DTR_RTS : 0);
  cdc.onDeviceConnected = () => {
    usbConfigured = true;
    emit({ event: 'usb', state: 'configured', at_s: now() / 1e9 });
  };
  cdc.onSerialData = (bytes) => serialOut.push(Buffer.from(bytes));
  const read = mcu.usbCtrl.onEndpointRead;
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint === cdc.outEndpoint && cdc.txFIFO.empty) return; // NAK: nothing to send
    read(endpoint, size);
  };
  mcu.core.PC = FLASH_BASE; // boot stage 2 at the start of flash, as the bootrom would jump to
  board = { sim, mcu, cdc, setLineState, watchdog };
  pioNext = Infinity;
  pioPeriod = 0;
}

function setHostOpen(open) {
  hostOpen = open;
  if (usbConfigured) board.setLineState(open ? CDC_DTR_RTS : 0);
}

function reset(reason) {
  const { watchdog, sim } = board;
  const carry = { scratch: Uint32Array.from(watchdog.scratchData), reason: watchdog.reason };
  baseNanos += sim.clock.nanos;
  usbConfigured = false;
  emit({ event: 'usb', state: 'gone', at_s: now() / 1e9 });
  emit({ event: 'reset', reason, at_s: now() / 1e9 });
  pioStalled = false;
  boot(carry);
}

// The microphone's state machine: the first enabled one (this firmware runs one).
function enabledMachine() {
  for (const pio of board.mcu.pio) {
    for (const machine of pio.machines) if (machine.enabled) return [pio, machine];
  }
  return null;
}

function schedulePio() {
  const found = enabledMachine();
  if (found === null || pioStalled) {
    pioNext = Infinity;
    return;
  }
  const [, machine] = found;
  const divider = machine.clockDivInt + machine.clockDivFrac / 256 || 65536;
  pioPeriod = (divider * 1e9) / board.mcu.clkSys;
  if (pioNext === Infinity) pioNext = board.sim.clock.nanos + pioPeriod;
}

function stepPio() {
  const found = enabledMachine();
  if (found === null) {
    pioNext = Infinity;
    return;
  }
  const [pio] = found;
  const { clock } = board.sim;
  while (pioNext <= clock.nanos) {
    for (const machine of pio.machines) if (machine.enabled) machine.step();
    pio.checkChangedPins();
    pioNext += pioPeriod;
  }
}

// ---- cycle profile -------------------------------------------------------------------------
const profile = opts.profile ? makeProfile(JSON.parse(fs.readFileSync(opts.profile, 'utf8'))) : null;

function makeProfile(manifest) {
  const entries = new Map();
  for (const [name, address] of Object.entries(manifest.symbols)) entries.set(Number(address) & ~1, name);
  const calls = Object.fromEntries([...entries.values()].map((name) => [name, []]));
  return { entries, calls, stack: [], threadCycles: 0, busy: [], lastDsp: null, frames: [] };
}

function profileStep(core) {
  const pc = core.PC;
  const { stack } = profile;
  while (stack.length && pc === stack[stack.length - 1].ret && core.SP >= stack[stack.length - 1].sp) {
    const top = stack.pop();
    const cycles = profile.threadCycles - top.start;
    profile.calls[top.name].push(cycles);
    if (top.name === 'sa_dsp_frame') profile.lastDsp = cycles;
    if (top.name === 'sa_patterns_step' && profile.lastDsp !== null) {
      profile.frames.push(profile.lastDsp + cycles);
      profile.lastDsp = null;
    }
  }
  const name = profile.entries.get(pc);
  if (name !== undefined && core.IPSR === 0) {
    stack.push({ name, ret: core.LR & ~1, sp: core.SP, start: profile.threadCycles });
  }
}

function profileCount(core, cycles) {
  if (core.IPSR === 0) profile.threadCycles += cycles;
  const t = audioTime();
  if (t >= 0) {
    const window = Math.floor(t / FRAME_S);
    profile.busy[window] = (profile.busy[window] || 0) + cycles;
  }
}

function summary(values) {
  if (values.length === 0) return { count: 0 };
  let max = 0;
  let sum = 0;
  for (const v of values) {
    sum += v;
    if (v > max) max = v;
  }
  return { count: values.length, max, mean: sum / values.length };
}

function profileReport() {
  const busy = profile.busy.filter((v, i) => v !== undefined && i > 0).slice(0, -1);
  return {
    event: 'profile',
    clk_sys_hz: board.mcu.clkSys,
    frame_budget_cycles: Math.round(board.mcu.clkSys * FRAME_S),
    analysis_frames: summary(profile.frames),
    busy_per_16ms: summary(busy),
    functions: Object.fromEntries(Object.entries(profile.calls).map(([k, v]) => [k, summary(v)])),
  };
}

// ---- the run loop --------------------------------------------------------------------------
function runFor(nanos) {
  const { sim, mcu } = board;
  const { clock } = sim;
  const { core } = mcu;
  const until = clock.nanos + nanos;
  const cycleNanos = 1e9 / mcu.clkSys;
  while (clock.nanos < until && !resetPending) {
    if (core.waiting) {
      if (pioNext === Infinity) schedulePio();
      const toAlarm = clock.nanosToNextAlarm;
      let target = toAlarm > 0 ? clock.nanos + toAlarm : until;
      if (pioNext < target) target = pioNext;
      if (target > until) target = until;
      clock.tick(Math.max(0, target - clock.nanos));
    } else {
      if (profile) profileStep(core);
      const cycles = core.executeInstruction();
      if (profile) profileCount(core, cycles);
      clock.tick(cycles * cycleNanos);
    }
    if (pioNext <= clock.nanos) stepPio();
  }
  if (audioTime() >= stallAt) {
    stallAt = Infinity;
    pioStalled = true;
    pioNext = Infinity;
  } else if (pioNext === Infinity) {
    schedulePio();
  }
}

function flushSerial() {
  if (serialOut.length) {
    emit({ event: 'serial', hex: Buffer.concat(serialOut).toString('hex') });
    serialOut = [];
  }
}

let quit = false;
let stdinBuffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  stdinBuffer += chunk;
  let newline;
  while ((newline = stdinBuffer.indexOf('\n')) >= 0) {
    const command = stdinBuffer.slice(0, newline).trim();
    stdinBuffer = stdinBuffer.slice(newline + 1);
    if (command === 'open') setHostOpen(true);
    else if (command === 'close') setHostOpen(false);
    else if (command === 'quit') quit = true;
  }
});
process.stdin.on('end', () => {
  if (!opts.open) quit = true; // whoever drove us has gone
});

async function main() {
  boot(null);
  const wallStart = Date.now();
  const SLICE_NS = 2e6; // 2 ms of emulated time between looks at stdin and the wall clock
  while (!quit && !(audioTime() >= endAt)) {
    runFor(SLICE_NS);
    if (resetPending) {
      resetPending = false;
      flushSerial();
      reset('watchdog');
    }
    flushSerial();
    const ahead = now() / 1e6 - (Date.now() - wallStart);
    if (opts.realtime && ahead > 1) {
      await new Promise((resolve) => setTimeout(resolve, ahead));
    } else if (Date.now() - (main.lastYield || 0) > 20) {
      main.lastYield = Date.now();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  flushSerial();
  if (profile) emit(profileReport());
  emit({ event: 'end', emulated_s: now() / 1e9, audio_s: audioTime(), wall_s: (Date.now() - wallStart) / 1000 });
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
