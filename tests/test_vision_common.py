"MONAI-backed ViT pieces of medfound.vision.common: same function as the hand-written blocks they replaced."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from medfound.vision.common import PatchEmbed, ViTBlock, ViTEncoder, patchify


class _OldBlock(nn.Module):
    "The previous hand-written pre-norm block (separate q and kv projections, SDPA, GELU MLP)."
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, mask=None):
        B, L, D = x.shape
        h = self.n1(x)
        q = self.q(h).reshape(B, L, self.heads, -1).transpose(1, 2)
        k, v = self.kv(h).reshape(B, L, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        x = x + self.out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.n2(x))

    def monai_weights(self, pre=""):
        w = {"norm1.weight": self.n1.weight, "norm1.bias": self.n1.bias, "norm2.weight": self.n2.weight,
             "norm2.bias": self.n2.bias, "attn.qkv.weight": torch.cat([self.q.weight, self.kv.weight]),
             "attn.qkv.bias": torch.cat([self.q.bias, self.kv.bias]), "attn.out_proj.weight": self.out.weight,
             "attn.out_proj.bias": self.out.bias, "mlp.linear1.weight": self.mlp[0].weight,
             "mlp.linear1.bias": self.mlp[0].bias, "mlp.linear2.weight": self.mlp[2].weight,
             "mlp.linear2.bias": self.mlp[2].bias}
        return {pre + k: v for k, v in w.items()}


@pytest.mark.parametrize("masked", [False, True])
def test_block_matches_hand_written(masked):
    torch.manual_seed(0)
    old, new = _OldBlock(24, 3).double(), ViTBlock(24, heads=3).double()
    new.load_state_dict(old.monai_weights(), strict=True)
    z = torch.randn(2, 9, 24, dtype=torch.float64)
    m = torch.rand(9, 9) > 0.4
    m |= torch.eye(9, dtype=torch.bool)                                   # every query sees at least itself
    m = m if masked else None
    assert (new(z, m) - old(z, m)).abs().max() < 1e-12
    new.load_state_dict({k: v + 0.01 for k, v in old.monai_weights().items()})
    assert (new(z, m) - old(z, m)).abs().max() > 1e-3                      # the comparison can fail


def test_encoder_matches_hand_written():
    torch.manual_seed(1)
    conv, olds = nn.Conv2d(1, 16, 4, stride=4), [_OldBlock(16, 2) for _ in range(2)]
    pos, norm = 0.02 * torch.randn(1, 49, 16), nn.LayerNorm(16)
    enc = ViTEncoder(28, 4, 1, 16, depth=2, heads=2)
    sd = {"patch_embedding.patch_embeddings." + k: v for k, v in conv.state_dict().items()}
    sd.update({"patch_embedding.position_embeddings": pos, "norm.weight": norm.weight, "norm.bias": norm.bias})
    for i, o in enumerate(olds): sd.update(o.monai_weights(f"blocks.{i}."))
    enc.load_state_dict(sd, strict=True)
    x = torch.randn(3, 1, 28, 28)
    h = conv(x).flatten(2).transpose(1, 2) + pos
    for o in olds: h = o(h)
    assert (enc(x) - norm(h)).abs().max() < 1e-5


def test_patch_embed_is_a_linear_map_without_positions():
    torch.manual_seed(2)
    pe = PatchEmbed(32, 8, 2, 12)
    assert (pe.n_patches, pe.grid, pe.patch) == (16, 4, 8)
    assert [n for n, _ in pe.named_parameters()] == ["patch_embeddings.weight", "patch_embeddings.bias"]
    assert "position_embeddings" not in pe.state_dict()
    x = torch.randn(2, 2, 32, 32)
    t = patchify(x, 8)                                                     # pixels as (p, p, C)
    W = pe.proj.weight.permute(0, 2, 3, 1).reshape(12, -1)                 # conv weight in the same order
    assert torch.allclose(pe(x), t @ W.T + pe.proj.bias, atol=1e-5)


def test_causal_mask_and_all_weights_used():
    torch.manual_seed(3)
    blk = ViTBlock(16, heads=2)
    z = torch.randn(1, 6, 16, requires_grad=True)
    blk(z, mask=torch.ones(6, 6, dtype=torch.bool).tril())[:, 2].sum().backward()
    assert z.grad[:, 3:].abs().max() == 0 and z.grad[:, :3].abs().max() > 0
    assert all(p.grad is not None for p in blk.parameters())


def test_bad_sizes():
    with pytest.raises(ValueError, match="not divisible"): PatchEmbed(30, 4)
    with pytest.raises(ValueError, match="not divisible"): ViTEncoder(img_size=30, patch=4)
    with pytest.raises(ValueError, match="not divisible"): ViTBlock(10, heads=3)
