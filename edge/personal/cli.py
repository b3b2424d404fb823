"""``soundalert sounds learn|list|remove``: teach this node a sound, for every node of the site.

``learn`` runs on the node whose microphone will hear the sound (or heard the examples): it
computes YAMNet embeddings of the examples *here*, learns against this node's own recent
background (what its agent saved beside its outbox), and publishes only the resulting sound
pack, retained, on ``<root>/<site>/sounds/<sound>``. No audio leaves the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Coroutine
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import numpy as np
import typer

from schemas.decode import Rejected, decode
from schemas.soundpack import SoundPack
from soundalert.options import BrokerOpt, ConfigOpt, StateOpt, TopicRootOpt, fail
from soundalert.settings import ConfigError, load_settings

if TYPE_CHECKING:
    import numpy.typing as npt

    from edge.agent.settings import AgentSettings
    from edge.personal.embed import Embedder

__all__ = ["fetch_packs", "register", "sound_id"]

_QUIET_S: Final = 1.0
"""Retained packs arrive right after subscribing; this long without one ends the listing."""
_RECORD_RATE: Final = 16_000
T = TypeVar("T")
_YAMNET_NAMES_IT: Final = 0.5
"""The examples' mean YAMNet score of one label at which the sound is a known category's."""

sounds_app = typer.Typer(help="Personal sounds: learn, list and remove sounds of this site.",
                         no_args_is_help=True)  # fmt: skip

SiteOpt = Annotated[str | None, typer.Option("--site", help="Site id (the home).")]
NodeOpt = Annotated[str | None, typer.Option("--node", help="This node's id.")]


def sound_id(name: str) -> str:
    """A sound's id from its name: 'Microwave (kitchen)' -> 'microwave_kitchen'."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_-")[:64]
    if not slug:
        raise ValueError(f"cannot make a sound id of {name!r}; give --id")
    return slug


def _settings(config: Path | None, **flags: object) -> AgentSettings:
    from edge.agent.settings import AgentSettings  # noqa: PLC0415 - keep --help fast

    return load_settings(AgentSettings, config, **flags)


async def fetch_packs(settings: AgentSettings) -> dict[str, SoundPack]:
    """The site's sound packs, as the broker keeps them retained (bad ones left out)."""
    from schemas.topics import Topics  # noqa: PLC0415
    from soundalert.mqtt import BrokerUrl, make_client  # noqa: PLC0415

    topics = Topics(settings.topic_root)
    broker = BrokerUrl.parse(settings.broker.get_secret_value())
    packs: dict[str, SoundPack] = {}
    client_id = f"soundalert-sounds-{settings.site}-{settings.node}-{time.monotonic_ns() % 10**6}"
    async with make_client(broker, client_id) as client:
        await client.subscribe(topics.sound_packs(settings.site), qos=1)
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(_QUIET_S):
                    message = await anext(aiter(client.messages))
                parsed = topics.parse(message.topic.value)
                payload = message.payload
                if parsed is None or not isinstance(payload, bytes) or not payload:
                    continue
                try:
                    packs[parsed.category or ""] = decode(SoundPack, payload, parsed)
                except Rejected as rejected:
                    typer.echo(f"ignored a bad pack on {message.topic.value}: {rejected}",
                               err=True)  # fmt: skip
    return packs


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one MQTT exchange; a broker problem becomes an ``OSError`` saying so."""
    import aiomqtt  # noqa: PLC0415

    try:
        return asyncio.run(coroutine)
    except aiomqtt.MqttError as exc:
        raise OSError(f"MQTT broker: {exc}") from None


async def _publish(settings: AgentSettings, sound: str, payload: bytes) -> None:
    from schemas.topics import Topics  # noqa: PLC0415
    from soundalert.mqtt import BrokerUrl, make_client  # noqa: PLC0415

    topic = Topics(settings.topic_root).sound_pack(settings.site, sound)
    broker = BrokerUrl.parse(settings.broker.get_secret_value())
    async with make_client(broker, f"soundalert-sounds-{settings.site}-{settings.node}") as client:
        await client.publish(topic, payload, qos=1, retain=True, timeout=10)


def _record(count: int, seconds: float, device: str | None, countdown: int
            ) -> list[npt.NDArray[np.float32]]:  # fmt: skip
    """``count`` examples from the microphone, each after a countdown of ``countdown`` s."""
    from edge.agent.sources import SourceError  # noqa: PLC0415

    try:
        sounddevice: Any = import_module("sounddevice")  # optional extra
    except (ImportError, OSError) as exc:
        raise SourceError(f"--record needs sounddevice and PortAudio ({exc})") from None
    out = []
    for i in range(count):
        for left in range(countdown, 0, -1):
            typer.echo(f"example {i + 1} of {count}: make the sound in {left}...")
            time.sleep(1.0)
        typer.echo(f"recording {seconds:.0f} s")
        take = sounddevice.rec(round(seconds * _RECORD_RATE), samplerate=_RECORD_RATE,
                               channels=1, dtype="float32", device=device)  # fmt: skip
        sounddevice.wait()
        out.append(np.asarray(take, np.float32)[:, 0])
    return out


def _examples(model: Embedder, files: list[Path], recorded: list[npt.NDArray[np.float32]]
              ) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.float32]]:  # fmt: skip
    """Each example's embeddings of its windows of sound, and YAMNet's scores of them all."""
    from edge.personal.embed import read_16k, window_outputs  # noqa: PLC0415
    from edge.personal.learner import sound_mask  # noqa: PLC0415

    examples, scores = [], []
    for audio in [*(read_16k(f) for f in files), *recorded]:
        out = window_outputs(model, audio)
        if not out.embeddings.size:
            examples.append(np.zeros((0, 1024), np.float32))
            continue
        mask = sound_mask(out.levels)
        examples.append(out.embeddings[mask])
        scores.append(out.scores[mask])
    return examples, (np.concatenate(scores) if scores else np.zeros((0, 0), np.float32))


def _named_by_yamnet(scores: npt.NDArray[np.float32]) -> tuple[str, float] | None:
    """YAMNet's own best label for the examples' windows, with its mean score."""
    from edge.agent.labels import LabelMap  # noqa: PLC0415
    from edge.agent.model import DEFAULT_CLASS_MAP  # noqa: PLC0415

    if not scores.size:
        return None
    mean = scores.mean(axis=0)
    best = int(np.argmax(mean))
    return LabelMap.from_csv(DEFAULT_CLASS_MAP).names[best], float(mean[best])


@sounds_app.command("learn")
def learn_command(  # noqa: PLR0917 - typer passes options as parameters
    name: Annotated[str, typer.Option("--name", help="What the sound is called: 'Microwave'.")],
    examples: Annotated[
        list[Path] | None,
        typer.Argument(
            help="WAV files, one example each (3 to 10).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    _examples_flag: Annotated[
        bool,
        typer.Option(
            "--examples", help="Optional marker before the WAV files: --examples a.wav b.wav ..."
        ),
    ] = False,
    record: Annotated[
        int, typer.Option("--record", min=0, max=10, help="Record this many from the mic.")
    ] = 0,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each recording.")] = 3.0,
    device: Annotated[str | None, typer.Option("--device", help="Input device.")] = None,
    countdown: Annotated[
        int, typer.Option("--countdown", min=0, max=10, help="Seconds before each recording.")
    ] = 3,
    sound: Annotated[
        str | None, typer.Option("--id", help="Sound id (default: from name).")
    ] = None,
    priority: Annotated[
        str, typer.Option("--priority", help="normal, high or critical.")
    ] = "normal",
    color: Annotated[str | None, typer.Option("--color", help="#rrggbb.")] = None,
    icon: Annotated[str | None, typer.Option("--icon", help="Display icon name.")] = None,
    background: Annotated[
        Path | None,
        typer.Option(
            "--background",
            help="A WAV of this room's ordinary sound, when the agent has saved none yet.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    broker: BrokerOpt = None,
    site: SiteOpt = None,
    node: NodeOpt = None,
    state: StateOpt = None,
    topic_root: TopicRootOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Learn a sound from examples on this node and share it with every node of the site."""
    from edge.agent.model import EMBEDDING_DIMS, ModelError, YamnetModel  # noqa: PLC0415
    from edge.agent.sources import SourceError  # noqa: PLC0415
    from edge.personal.background import background_path, load_background  # noqa: PLC0415
    from edge.personal.embed import embed_wav  # noqa: PLC0415
    from edge.personal.learner import learn  # noqa: PLC0415
    from edge.personal.packs import model_of, pack_of  # noqa: PLC0415
    from schemas.soundpack import EmbeddingSpec  # noqa: PLC0415

    files = list(examples or [])
    if not files and not record:
        raise fail("give the examples: --examples a.wav b.wav ... or --record N")
    try:
        settings = _settings(config, broker=broker, site=site, node=node, state_dir=state,
                             topic_root=topic_root)  # fmt: skip
        sid = sound or sound_id(name)
        model = YamnetModel()
        recorded = _record(record, seconds, device, countdown) if record else []
        windows, scores = _examples(model, files, recorded)
        named = _named_by_yamnet(scores)
        bg = load_background(background_path(settings.outbox_path, settings.node))
        if background is not None:
            extra, _ = embed_wav(model, background)
            bg = extra if not bg.size else np.concatenate((bg, extra))
        known = _run(fetch_packs(settings))
        learned = learn(sid, windows, bg, known={k: model_of(p) for k, p in known.items()})
        previous = known.get(sid)
        spec = EmbeddingSpec(model="yamnet", version=model.version, dims=EMBEDDING_DIMS)
        pack = pack_of(learned, site=settings.site, node=settings.node, title=name,
                       version=1 if previous is None else previous.version + 1, embedding=spec,
                       priority=priority, color=color, icon=icon,  # type: ignore[arg-type]
                       named=named)  # fmt: skip
        payload = pack.to_json()
        _run(_publish(settings, sid, payload))
    except (ConfigError, ValueError, ModelError, SourceError, OSError) as exc:
        raise fail(str(exc)) from None
    local = settings.state_dir / "sounds" / f"{sid}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(payload)
    verb = "re-learned" if previous is not None else "learned"
    typer.echo(f"{verb} {name!r} as {sid!r} v{pack.version} for site {settings.site} "
               f"({len(payload)} bytes, no audio)")  # fmt: skip
    for line in learned.quality.lines():
        typer.echo(f"  {line}")
    if named is not None:
        typer.echo(f"  YAMNet's own name for it: {named[0]!r} ({named[1]:.2f})")
        if named[1] >= _YAMNET_NAMES_IT:
            typer.echo(f"  warning: YAMNet already hears this as {named[0]!r}: a built-in "
                       "category that counts that label may alert for it as well")  # fmt: skip


@sounds_app.command("list")
def list_command(
    broker: BrokerOpt = None,
    site: SiteOpt = None,
    topic_root: TopicRootOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the sounds this site has learned."""
    try:
        settings = _settings(config, broker=broker, site=site, topic_root=topic_root)
        packs = _run(fetch_packs(settings))
    except (ConfigError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    if not packs:
        typer.echo(f"site {settings.site} has learned no sounds")
    for sid, p in sorted(packs.items()):
        loo = p.quality.get("leave_one_out")
        typer.echo(f"{sid:<24} {p.title!r} v{p.version} {p.priority}, learned on "
                   f"{p.learned_on} at {p.learned_at:%Y-%m-%d %H:%M} UTC from "
                   f"{p.quality.get('examples', '?')} examples"
                   + (f" (leave-one-out {float(loo):.0%})" if loo is not None else ""))  # fmt: skip


@sounds_app.command("remove")
def remove_command(  # noqa: PLR0917 - typer passes options as parameters
    sound: Annotated[str, typer.Argument(help="The sound's id (see `soundalert sounds list`).")],
    broker: BrokerOpt = None,
    site: SiteOpt = None,
    state: StateOpt = None,
    topic_root: TopicRootOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Forget a learned sound on every node of the site."""
    try:
        settings = _settings(config, broker=broker, site=site, state_dir=state,
                             topic_root=topic_root)  # fmt: skip
        packs = _run(fetch_packs(settings))
        if sound not in packs:
            known = ", ".join(sorted(packs)) or "none"
            raise fail(f"site {settings.site} has no learned sound {sound!r} (learned: {known})")
        _run(_publish(settings, sound, b""))
    except (ConfigError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    (settings.state_dir / "sounds" / f"{sound}.json").unlink(missing_ok=True)
    typer.echo(f"removed {sound!r} ({packs[sound].title!r}) from site {settings.site}")


def register(app: typer.Typer) -> None:
    """Add ``sounds`` to the ``soundalert`` command."""
    app.add_typer(sounds_app, name="sounds")
