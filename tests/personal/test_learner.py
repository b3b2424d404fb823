"""The learner, sound packs and the node's sound book, on real YAMNet embeddings."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from edge.personal.embed import embed_audio
from edge.personal.learner import learn, sound_windows
from edge.personal.packs import SoundBook, learn_from_windows, model_of, pack_of
from schemas.decode import Reason, Rejected, decode
from schemas.soundpack import LearnRequest, SoundPack
from schemas.topics import ParsedTopic
from tests.personal.sounds import (
    background,
    embedding_spec,
    example,
    learned_microwave,
    pack_payload,
    yamnet,
)

Matrix = npt.NDArray[np.float32]
TOPIC = ParsedTopic("sound_pack", "home", category="microwave")


def test_a_sound_learned_from_five_examples_is_heard_in_a_sixth_and_not_in_the_room() -> None:
    learned = learned_microwave()
    model = learned.model
    sixth = sound_windows(*example(6))
    assert model.accepts(sixth).any(), model.similarity(sixth)
    other_room = background(7, 60.0)  # background recordings it never learned from
    taken = model.accepts(other_room)
    assert taken.mean() <= 0.02, f"{taken.sum()} of {taken.size} background windows taken"
    q = learned.quality
    assert (q.examples, q.leave_one_out) == (5, 1.0)
    assert q.warnings == (), q.warnings
    assert any("leave-one-out: 100%" in line for line in q.lines())


def test_the_sound_in_the_nodes_background_is_not_learned_as_background() -> None:
    """The microwave beeped a few times before it was taught: the node kept those windows as
    background. They are left out, so the sound is still learned."""
    examples = [sound_windows(*example(s)) for s in range(5)]
    beeped = np.concatenate([example(s)[0] for s in range(20, 26)])
    learned = learn("microwave", examples, np.concatenate([background(1), beeped]))
    assert learned.quality.leave_one_out == 1.0, learned.quality
    assert learned.model.accepts(sound_windows(*example(6))).any()
    assert learned.model.accepts(background(7, 60.0)).mean() <= 0.02


def test_one_example_learns_with_a_warning_and_a_stricter_threshold() -> None:
    one = learn("microwave", [sound_windows(*example(0))], background(1))
    five = learned_microwave()
    assert one.quality.leave_one_out is None
    assert any("at least 3" in w for w in one.quality.warnings)
    assert one.model.threshold >= 0.7 or one.model.threshold >= five.model.threshold


def test_no_background_and_a_sound_too_alike_a_known_one_are_warned_about() -> None:
    first = learned_microwave()
    again = learn("oven_timer", [sound_windows(*example(s)) for s in range(10, 14)],
                  np.zeros((0, 0), np.float32), known={"microwave": first.model})  # fmt: skip
    warnings = " ".join(again.quality.warnings)
    assert "no background" in warnings
    assert "too alike 'microwave'" in warnings
    assert again.quality.nearest == "microwave"


def test_silent_examples_are_refused() -> None:
    silent = np.zeros(3 * 16000, np.float32)
    emb, lev = embed_audio(yamnet(), silent)
    with pytest.raises(ValueError, match="no example holds a window of sound"):
        learn("microwave", [sound_windows(emb, lev)], background(1))


def test_a_pack_round_trips_and_decides_as_the_model_it_came_from() -> None:
    learned = learned_microwave()
    pack = pack_of(learned, site="home", node="kitchen", title="Microwave", version=1,
                   embedding=embedding_spec())  # fmt: skip
    payload = pack.to_json()
    assert len(payload) < 64 * 1024
    again = decode(SoundPack, payload, TOPIC)
    model = model_of(again)
    probe = np.concatenate([sound_windows(*example(6)), background(7)])
    # float16 weights: the same decisions as the float32 model
    assert (model.accepts(probe) == learned.model.accepts(probe)).mean() >= 0.99


def _flipped(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[10] ^= 0x40
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"schema": "soundalert.soundpack/2"}, Reason.UNKNOWN_SCHEMA_VERSION),
        ({"embedding__model": "vggish"}, Reason.WRONG_EMBEDDING_MODEL),
        ({"embedding__dims": 512}, Reason.WRONG_EMBEDDING_MODEL),
        ({"weights__sha256": "0" * 64}, Reason.CORRUPT_WEIGHTS),
        ({"weights__prototypes": "not base64!"}, Reason.CORRUPT_WEIGHTS),
        ({"sound": "oven"}, Reason.TOPIC_MISMATCH),
    ],
)
def test_bad_packs_are_refused_with_their_reason(changes: dict[str, object], reason: Reason
                                                 ) -> None:  # fmt: skip
    with pytest.raises(Rejected) as caught:
        decode(SoundPack, pack_payload(**changes), TOPIC)
    assert caught.value.reason == reason, caught.value


def test_weights_damaged_in_transit_are_refused_even_with_a_matching_length() -> None:
    pack = json.loads(pack_payload())
    pack["weights"]["background"] = _flipped(pack["weights"]["background"])
    with pytest.raises(Rejected) as caught:
        decode(SoundPack, json.dumps(pack).encode(), TOPIC)
    assert caught.value.reason == Reason.CORRUPT_WEIGHTS


def test_the_sound_book_counts_what_it_refuses_and_recognises_what_it_holds() -> None:
    refused: Counter[str] = Counter()
    book = SoundBook("home", embedding_spec(), rejected=lambda reason: refused.update([reason]))
    other_yamnet = pack_payload(embedding__version="0123456789ab")
    assert book.take(TOPIC, other_yamnet) is None
    assert book.take(TOPIC, b"{not json") is None
    assert refused == {"wrong_embedding_model": 1, "malformed_json": 1}
    assert book.take(TOPIC, pack_payload()) == "learned microwave v1"
    sixth = sound_windows(*example(6))
    found = [book.match(row) for row in sixth]
    assert any(f is not None and f[0] == "microwave" and f[1] >= 0.5 for f in found), found
    assert book.take(TOPIC, b"") == "removed microwave"
    assert all(book.match(row) is None for row in sixth)


def test_learning_from_kept_windows_needs_windows_of_sound() -> None:
    """ "This was my ...": the windows a node kept of one sound become up to five examples;
    a span it kept nothing of (or only silence) learns nothing."""
    book = SoundBook("home", embedding_spec())
    at = datetime(2026, 1, 1, tzinfo=UTC)
    request = LearnRequest(request_id="r1", site="home", node="hall", sound="microwave",
                           title="Microwave", heard_from=at, heard_to=at, at=at)  # fmt: skip
    emb, lev = example(6)
    pack, learned = learn_from_windows(request, emb, lev, background(1), book)
    assert (pack.sound, pack.version, pack.learned_on) == ("microwave", 1, "hall")
    assert 1 <= learned.quality.examples <= 5
    assert model_of(pack).accepts(sound_windows(*example(5))).any()
    empty = np.zeros((0, 0), np.float32)
    with pytest.raises(ValueError, match="kept no window of sound"):
        learn_from_windows(request, empty, np.zeros(0, np.float32), background(1), book)
