"""Edge real-time benchmark: the agent's CPU seconds per second of audio, and its peak memory.

The agent runs as its own process pinned to one core, in streaming mode: raw s16le PCM on stdin,
written in real time in 0.1 s blocks (as ``arecord | soundalert agent --stdin`` would), publishing
to a real Mosquitto, with end-to-end delivery: the bench acknowledges every event as the
aggregator would (a retained DeliveryAck per event), so the agent deletes what is acknowledged.
CPU is counted from the first audio block to the process's exit (start-up is reported apart);
peak resident memory is the kernel's high-water mark for the process. Wake-ups (voluntary
context switches, all threads) count how often the agent waited and woke again: on this machine
each costs a cache-cold start, and unlike CPU time their count does not depend on what else
runs. Preemptions (involuntary switches) show how disturbed a run was.

Beside it, as a baseline: the same audio through the bare model (the YAMNet interpreter; for
mn04 its numpy front end and interpreter; for both, both), one inference per 0.48 s hop, with
nothing else (no gate, patterns, outbox or MQTT).

``--model yamnet,mn04,both`` measures the agent with each model (``soundalert agent --model``),
one after the other, and prints them side by side. Targets: every agent under 0.05 CPU s per
audio s and 150 MB; with mn04 (alone), under 0.01 CPU s per audio s.

``--baseline REF`` runs the agent of another revision too (``git archive REF``, on this
checkout's interpreter and packages), alternating with this one (``--repeat`` times each), and
prints it and the ratio this / baseline beside each figure. Each figure is the best (lowest) of
the runs: on a shared machine other processes only ever add to an agent's CPU time (the same
agent measured 0.016 and 0.075 CPU s per audio s hours apart), and the least disturbed run is
the closest to what the agent itself costs.

    .venv/bin/python -m bench.edge_realtime [--seconds 60] [--model yamnet,mn04,both]
                                            [--baseline main] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.revision import export
from edge.agent.demo import demo_signal
from edge.agent.models import DEFAULT_CHOICE, KINDS, ModelChoice, load_models
from edge.agent.windowing import SAMPLE_RATE, WINDOW_SAMPLES, hop_samples
from edge.dsp import synth
from schemas.common import utc_now
from schemas.messages import DeliveryAck
from schemas.topics import Topics
from tests.support.mosquitto import Mosquitto

__all__ = ["main"]

RTF_TARGET: Final = 0.05
RTF_TARGETS: Final[dict[str, float]] = {"mn04": 0.01}
"""Tighter targets for some models."""
RSS_TARGET_MB: Final = 150.0
BLOCK: Final = SAMPLE_RATE // 10
AGENT: Final = [sys.executable, "-c", "from soundalert.cli import main; main()", "agent"]
TOPICS: Final = Topics()


def _audio(seconds: float) -> npt.NDArray[np.int16]:
    """Room noise with a T3 alarm from 6 s on (the demo recording, at any length)."""
    return synth.to_int16(demo_signal(seconds, alarm_at_s=6.0))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _switches(pid: int) -> tuple[int, int]:
    """The process's context switches so far, summed over its threads: voluntary (it waited
    and woke again) and involuntary (preempted by another process)."""
    counts = [0, 0]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                counts[0] += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                counts[1] += int(line.split()[1])
    return counts[0], counts[1]


def _pin() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


class _Acker:
    """Plays the aggregator's acknowledgements: every event it hears is acknowledged at once."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-acker")
        self.client.username_pw_set("node", "secret")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPICS.events("bench", "edge"), qos=1)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        ack = DeliveryAck(site="bench", node="edge", seq=seq, at=utc_now())
        client.publish(TOPICS.ack("bench", "edge"), ack.to_json(), qos=1, retain=True)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_agent(audio: npt.NDArray[np.int16], workdir: Path, model: ModelChoice = DEFAULT_CHOICE,
              tree: Path | None = None) -> dict[str, float]:  # fmt: skip
    """The agent of this checkout, or of the files under ``tree``, streaming ``audio``."""
    env = None
    if tree is not None:  # its packages ahead of this checkout's (an editable install)
        env = {**os.environ, "PYTHONPATH": str(tree)}
    broker = Mosquitto(workdir / "mosquitto", users={"node": "secret"},
                       acl="user node\ntopic readwrite #\n")  # fmt: skip
    broker.start()
    acker = _Acker(broker.port)
    try:
        proc = subprocess.Popen(
            [*AGENT, "--stdin", "--broker", broker.url("node"), "--site", "bench",
             "--node", "edge", "--outbox", str(workdir / "outbox.sqlite3"),
             "--model", model, "--log-level", "warning"],
            stdin=subprocess.PIPE, preexec_fn=_pin,  # noqa: PLW1509 - affinity before exec
            cwd=tree, env=env,
        )  # fmt: skip
        assert proc.stdin is not None
        time.sleep(4.0)  # imports, model load, connection
        startup = _cpu_s(proc.pid)
        woke, preempted = _switches(proc.pid)
        began = time.monotonic()
        for i, at in enumerate(range(0, audio.size, BLOCK)):
            proc.stdin.write(audio[at : at + BLOCK].astype("<i2").tobytes())
            proc.stdin.flush()
            time.sleep(max(0.0, began + (i + 1) * BLOCK / SAMPLE_RATE - time.monotonic()))
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        acker.stop()
        broker.kill()
    total = usage.ru_utime + usage.ru_stime
    return {
        "returncode": float(proc.returncode),
        "startup_cpu_s": startup,
        "stream_cpu_s": total - startup,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "wakeups": float(usage.ru_nvcsw - woke),
        "preemptions": float(usage.ru_nivcsw - preempted),
    }


def run_baseline(audio: npt.NDArray[np.int16], model: ModelChoice = DEFAULT_CHOICE
                 ) -> dict[str, float]:  # fmt: skip
    models = load_models(model)
    longest = max(m.context for m in models)
    x = np.concatenate((np.zeros(longest, np.float32), audio.astype(np.float32) / 32768.0))
    hop = hop_samples(0.48)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for index, start in enumerate(range(longest, x.size - WINDOW_SAMPLES + 1, hop)):
        end = start + WINDOW_SAMPLES
        for loaded in models:  # as the pipeline runs them: span heard, every n-th window
            if index % loaded.every == 0:
                loaded.classifier(x[end - loaded.context : end])
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"stream_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the lowest of the runs (interference only adds); the exit code of any run
    that failed."""
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    best["returncode"] = next((run["returncode"] for run in runs if run["returncode"]), 0.0)
    return best


Figures = dict[str, float]


def _baseline_tree(ref: str, into: Path) -> Path:
    try:
        return export(ref, into)
    except ValueError as exc:
        sys.exit(f"edge_realtime: {exc}")


def _measure(audio: npt.NDArray[np.int16], model: ModelChoice, repeat: int,
             baseline: Path | None) -> tuple[Figures, Figures | None]:  # fmt: skip
    """This agent's figures and the baseline's (best of the runs), alternating which goes
    first."""
    mine: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    for turn in range(repeat):
        order = [None, baseline] if turn % 2 == 0 else [baseline, None]
        for tree in order if baseline is not None else [None]:
            with tempfile.TemporaryDirectory(prefix="soundalert-edge-") as tmp:
                result = run_agent(audio, Path(tmp), model, tree)
            (mine if tree is None else theirs).append(result)
    return _best(mine), _best(theirs) if theirs else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Agent CPU per audio second, and peak RSS.")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed in real time")
    parser.add_argument("--model", default=DEFAULT_CHOICE,
                        help="the agent's model(s), comma-separated")  # fmt: skip
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the agent of this git revision (e.g. main), alternating",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each agent per model (the best is reported)"
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.model.split(",")]
    if unknown := sorted(set(names) - set(KINDS)):
        sys.exit(f"edge_realtime: unknown model(s) {unknown}: use {', '.join(KINDS)}")
    if args.repeat < 1:
        sys.exit("edge_realtime: --repeat must be at least 1")
    models = [m for m in KINDS if m in names]
    audio = _audio(args.seconds)
    seconds = audio.size / SAMPLE_RATE
    agents: dict[str, dict[str, float]] = {}
    based: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="soundalert-baseline-") as tmp:
        tree = _baseline_tree(args.baseline, Path(tmp)) if args.baseline else None
        for model in models:
            agents[model], theirs = _measure(audio, model, args.repeat, tree)
            if theirs is not None:
                based[model] = theirs
    _pin()
    baselines = {model: run_baseline(audio, model) for model in models}
    runs = f", best of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"audio streamed: {seconds:.0f} s per model, one core, the agent as its own process"
          f"{runs}")  # fmt: skip
    if based:
        print(f"beside each agent figure: the agent of {args.baseline} (run alternately), and "
              f"the ratio this / {args.baseline}")  # fmt: skip
    print(f"{'':<36}" + "".join(f"{m:>10}" for m in models))

    def agent_row(title: str, key: str, spec: str, scale: float = 1.0) -> None:
        print(f"{title:<36}" + "".join(format(agents[m][key] * scale, spec) for m in models))
        if based:
            ref = str(args.baseline)[:24]
            print(f"{'  ' + ref:<36}" + "".join(format(based[m][key] * scale, spec)
                                                 for m in models))  # fmt: skip
            print(f"{'  this / ' + ref:<36}" + "".join(
                format(agents[m][key] / based[m][key], "10.2f") if based[m][key] else f"{'-':>10}"
                for m in models))  # fmt: skip

    agent_row("agent CPU s per audio s (RTF)", "stream_cpu_s", "10.4f", 1 / seconds)
    print(
        f"{'bare model CPU s per audio s':<36}"
        + "".join(format(baselines[m]["stream_cpu_s"] / seconds, "10.4f") for m in models)
    )
    agent_row("agent CPU s while streaming", "stream_cpu_s", "10.2f")
    agent_row("agent CPU s at start-up", "startup_cpu_s", "10.2f")
    agent_row("agent peak RSS MB", "peak_rss_mb", "10.1f")
    agent_row("agent wake-ups per audio s", "wakeups", "10.1f", 1 / seconds)
    agent_row("agent preemptions per audio s", "preemptions", "10.1f", 1 / seconds)
    print(
        f"{'agent exit code':<36}"
        + "".join(format(agents[m]["returncode"], "10.0f") for m in models)
    )
    ok = True
    for model in models:
        rtf = agents[model]["stream_cpu_s"] / seconds
        base = baselines[model]["stream_cpu_s"] / seconds
        target = RTF_TARGETS.get(model, RTF_TARGET)
        rss = agents[model]["peak_rss_mb"]
        fine = rtf < target and rss < RSS_TARGET_MB and agents[model]["returncode"] == 0
        ok &= fine
        ratio = f"{rtf / base:.1f}x the bare model" if base else ""
        print(f"[{'ok' if fine else 'FAIL'}] {model}: RTF {rtf:.4f} < {target} and peak RSS "
              f"{rss:.1f} MB < {RSS_TARGET_MB:.0f} MB ({ratio})")  # fmt: skip
    if "yamnet" in models:
        for model in models:
            if model != "yamnet":
                times = agents[model]["stream_cpu_s"] / agents["yamnet"]["stream_cpu_s"]
                print(f"agent {model} / agent yamnet CPU: {times:.2f}x")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
