"AntLM chapter: masks, schedule, readers of the packaged corpora, grammar (fast; no data needed)."
import struct, zlib

import pytest
import torch

from medfound.data import DataError
from medfound.language.antlm import (BOS, MASK, BabyLlama, Grammar, LTGBert, additive_mask, causal_logprob, dependence,
                                    mask_tokens, phase_schedule, pseudo_loglik, r_unserialize, read_sword_ztext,
                                    relative_buckets)


@pytest.mark.parametrize("make", [lambda: BabyLlama(50, 16, 1, 2, attn="eager"), lambda: BabyLlama(50, 16, 1, 2, attn="sdpa"),
                                  lambda: LTGBert(50, 16, 1, 2)])
def test_causal_and_bidirectional_dependence(make):
    torch.manual_seed(0)
    m = make().eval()
    ids = torch.randint(5, 50, (1, 7))
    off = ~torch.eye(7, dtype=torch.bool)
    Dc, Db = dependence(m, ids, causal=True), dependence(m, ids, causal=False)
    assert torch.equal(Dc, torch.ones(7, 7, dtype=torch.bool).tril())       # exactly the past and itself
    assert Db[off].all()                                                     # everything else


def test_additive_mask_padding_and_causal():
    pm = torch.tensor([[False, False, True]])
    m = additive_mask(pm, causal=True)
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0, 1, 0] == 0 and m[0, 0, 0, 1] < -1e30 and m[0, 0, 1, 2] < -1e30
    assert (additive_mask(pm, causal=False)[0, 0, :2, :2] == 0).all()


def test_schedule():
    assert phase_schedule(24, "antlm") == ["clm"] * 4 + ["mlm"] * 16 + ["clm"] * 4
    assert phase_schedule(12, "antlm", ratio=(1, 1, 1)) == ["clm"] * 4 + ["mlm"] * 4 + ["clm"] * 4
    with pytest.raises(ValueError):
        phase_schedule(6, "gpt")


def test_mask_tokens_never_touches_bos_or_specials():
    ids = torch.randint(5, 100, (32, 40)); ids[:, 0] = BOS; ids[:, 20] = 2
    for span in (False, True):
        x, t = mask_tokens(ids, 100, span=span, gen=torch.Generator().manual_seed(1))
        assert (t[:, 0] == -100).all() and (t[:, 20] == -100).all() and (x[:, 0] == BOS).all()
        assert ((x == MASK) <= (t != -100)).all()


def test_relative_buckets():
    b = relative_buckets(100, 16, 64)
    assert b.min() >= 0 and b.max() < 16
    assert (b.diagonal() == b[0, 0]).all()                                   # depends on j - i only
    assert b[0, 1] != b[1, 0] and b[0, 1] != b[0, 2]                         # signed, exact near the diagonal


def test_scorers_prefer_the_likely_sentence_under_a_peaked_model():
    class Toy(torch.nn.Module):           # predicts token 7 everywhere
        shift = 1
        def forward(self, ids, padding_mask=None, causal=True, hidden=False):
            out = torch.full((*ids.shape, 10), -5.0); out[..., 7] = 5.0; return out
    good, bad = [BOS, 7, 7, 2], [BOS, 7, 8, 2]
    assert (causal_logprob(Toy(), [good])[0] > causal_logprob(Toy(), [bad])[0])
    assert (pseudo_loglik(Toy(), [good])[0] > pseudo_loglik(Toy(), [bad])[0])


def _xdr_strings(xs):
    b = b"X\n" + struct.pack(">iii", 2, 0x040200, 0x020300) + struct.pack(">ii", 16, len(xs))
    for s in xs:
        e = s.encode(); b += struct.pack(">ii", 0x00040009, len(e)) + e
    return b


def test_r_unserialize_character_vector():
    assert r_unserialize(_xdr_strings(["It is a truth", "", "universally"])) == ["It is a truth", "", "universally"]
    with pytest.raises(DataError):
        r_unserialize(b"A\n" + b"\0" * 20)


def test_sword_reader(tmp_path):
    blocks = [b"<div>In the beginning</div>", b" God created"]
    bzz, bzs = b"", b""
    for blk in blocks:
        z = zlib.compress(blk); bzs += struct.pack("<III", len(bzz), len(z), len(blk)); bzz += z
    (tmp_path / "x.bzs").write_bytes(bzs); (tmp_path / "x.bzz").write_bytes(bzz)
    assert read_sword_ztext(tmp_path / "x.bzs", tmp_path / "x.bzz") == "<div>In the beginning</div> God created"
    (tmp_path / "y.bzs").write_bytes(bzs[:-1])
    with pytest.raises(DataError, match="multiple of 12"):
        read_sword_ztext(tmp_path / "y.bzs", tmp_path / "x.bzz")


def test_grammar_pairs_are_minimal():
    suite = Grammar(seed=0).suite(20)
    assert len(suite) >= 8
    for ph, items in suite.items():
        assert len(items) == 20 and len(set(items)) == 20
        for g, b in items:
            gw, bw = g.split(), b.split()
            assert len(gw) == len(bw) and sum(x != y for x, y in zip(gw, bw)) == 1, (ph, g, b)


def test_grammar_corpus_keeps_held_out_nouns_out_of_tested_slots():
    import re
    from medfound.language.antlm import HELD_OUT_NOUNS, NOUNS
    train = [n[0] for n in NOUNS if n[0] not in HELD_OUT_NOUNS]
    suite = Grammar(seed=1, heads=HELD_OUT_NOUNS).suite(10)
    banned = {s for items in suite.values() for p in items for s in p}
    corpus = Grammar(seed=0, heads=train, others=train).corpus(3000, banned=banned)
    held = {w for n in NOUNS if n[0] in HELD_OUT_NOUNS for w in n[:2]}
    frame = re.compile(r"^the \w+ \w+ (his|her|their) \w+ \.$")
    with_held = [s for s in corpus if held & set(s.split())]
    assert with_held and all(frame.match(s) for s in with_held)              # only exposure sentences
    assert held <= {w for s in with_held for w in s.split()}                # every held-out form is shown
    assert not banned & set(corpus)
    for ph, items in suite.items():                                          # every test pair uses a held-out noun
        assert all(held & set(g.split()) for g, _ in items), ph


def test_word_level_tokenizer_keeps_words_whole():
    from medfound.language.antlm import SPECIALS, train_tokenizer
    tok = train_tokenizer(["the kings lost their horse .", "the queen has seen the book ."], 100, word_level=True)
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(5))
    assert tok.encode("the kings has seen their book .").tokens == ["the", "kings", "has", "seen", "their", "book", "."]
