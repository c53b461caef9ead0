"""The dance policy: a cross-conditional GPT over music, upper-body codes and lower-body codes (docs/models.md).

Read top to bottom: config -> attention with a relative-position bias -> block -> the model -> streaming state.

**Streams and mask (as Bailando).** Time step i has three tokens: music frame i (at the code rate, fps/8), up
code i, down code i. A token at time i in any stream sees all three streams at times ≤ i (including the other
streams at time i). The up token at i predicts up code i+1 and the down token at i predicts down code i+1.
Teacher forcing (``forward``): inputs are codes 0..L-2 with music frames 1..L-1, targets codes 1..L-1, so "token i
predicts code i+1 while seeing music frame i+1". Loss CE_up + CE_down (means over positions).

**Deviation from Bailando, made for streaming.** Bailando re-runs a 29-step window with *learned absolute*
positions at every step, so each new code costs a whole window, and a KV cache would not reproduce it (an absolute
position changes meaning when the window slides). Here attention is **banded**: a token at time i sees only times
i-band+1 .. i (``band`` = 28 steps, 84 tokens), and positions enter only through a **learned relative bias**
b[head, i - j] added to the attention scores (T5-style, one table per layer, initialised as ALiBi's linear
recency slopes), plus a learned stream embedding (music / up / down). Nothing depends on absolute time, so the
streaming computation with a KV cache of the last ``band`` steps — one new step costs three tokens — is the *same
function* as the uncached banded computation over the whole sequence, at every step and beyond the band
(``tests/test_policy.py`` checks this in float64). Train on windows longer than ``band`` so the model learns with
old steps dropping out of view, exactly as it will run.

Other sizes follow Bailando's: 12 blocks (Bailando's 6 base + 6 head), 768 wide, 12 heads, pre-LayerNorm, GELU MLP
4×, dropout 0.1, weights N(0, 0.02), bias-free output heads per stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from e3d2_core.errors import E3D2Error

DEFAULT_CONFIG = {
    "n_layer": 12,
    "n_head": 12,
    "n_embd": 768,
    "band": 28,          # attention window in time steps (3 tokens each)
    "vocab": 512,        # codebook size of each half
    "music_dim": 438,    # music feature dimension (438 for Bailando's set)
    "dropout": 0.1,
}


def make_config(config: dict | None) -> dict:
    config = dict(config or {})
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise E3D2Error(f"unknown policy config keys: {sorted(unknown)}")
    out = {**DEFAULT_CONFIG, **config}
    if out["n_embd"] % out["n_head"]:
        raise E3D2Error("n_embd must be a multiple of n_head")
    return out


def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi's geometric slopes 2^(-8(h+1)/H): the initial recency preference of each head."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)])


class BandedSelfAttention(nn.Module):
    """Multi-head attention over the last ``band`` time steps with a learned bias per head and time distance."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.n_head, self.band = cfg["n_head"], cfg["band"]
        self.qkv = nn.Linear(cfg["n_embd"], 3 * cfg["n_embd"])
        self.proj = nn.Linear(cfg["n_embd"], cfg["n_embd"])
        self.dropout = cfg["dropout"]
        self.resid_drop = nn.Dropout(cfg["dropout"])
        distance = torch.arange(self.band, dtype=torch.float32)
        self.rel_bias = nn.Parameter(-alibi_slopes(self.n_head)[:, None] * distance[None])   # (H, band)

    def _heads(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        return [t.view(b, n, self.n_head, c // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def _merge(self, y):
        b, h, n, d = y.shape
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, h * d)))

    def forward(self, x, time_index):
        """Uncached: x (B, N, C) tokens with their time steps ``time_index`` (N,) -> (B, N, C)."""
        q, k, v = self._heads(x)
        distance = time_index[:, None] - time_index[None, :]                      # (N, N) query time − key time
        visible = (distance >= 0) & (distance < self.band)
        bias = self.rel_bias[:, distance.clamp(0, self.band - 1)]                 # (H, N, N)
        bias = bias.masked_fill(~visible, float("-inf")).to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self._merge(y)

    def step(self, x, cache):
        """Cached: x (B, 3, C), the three tokens of the new step; ``cache`` [k, v] (B, H, S, hd) in time order,
        updated in place to hold at most ``band`` steps. -> (B, 3, C)."""
        q, k, v = self._heads(x)
        if cache[0] is not None:
            keep = 3 * (self.band - 1)                                              # the older band-1 steps
            k = torch.cat([cache[0][:, :, -keep:], k], 2)
            v = torch.cat([cache[1][:, :, -keep:], v], 2)
        cache[0], cache[1] = k, v
        s = k.shape[2]
        distance = (s - 1 - torch.arange(s, device=x.device)) // 3                 # steps back from now
        bias = self.rel_bias[:, distance][:, None, :].expand(-1, 3, -1).to(q.dtype)  # (H, 3, S)
        return self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None]))


class Block(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        c = cfg["n_embd"]
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn = BandedSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c), nn.Dropout(cfg["dropout"]))

    def forward(self, x, time_index):
        x = x + self.attn(self.ln1(x), time_index)
        return x + self.mlp(self.ln2(x))

    def step(self, x, cache):
        x = x + self.attn.step(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


@dataclass
class StreamState:
    """A KV cache of the last ``band`` steps for every layer, and how many steps were fed."""
    caches: list = field(default_factory=list)
    steps: int = 0


class DancePolicy(nn.Module):
    """π_BC. ``config``: see DEFAULT_CONFIG (plain data, stored in bundles)."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = cfg = make_config(config)
        c = cfg["n_embd"]
        self.music_in = nn.Linear(cfg["music_dim"], c)
        self.up_in = nn.Embedding(cfg["vocab"], c)
        self.down_in = nn.Embedding(cfg["vocab"], c)
        self.stream = nn.Parameter(torch.zeros(3, c))            # music, up, down
        self.drop = nn.Dropout(cfg["dropout"])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(c)
        self.head_up = nn.Linear(c, cfg["vocab"], bias=False)
        self.head_down = nn.Linear(c, cfg["vocab"], bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.stream, std=0.02)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def _tokens(self, music, up, down):
        """(B,L,D), (B,L), (B,L) -> (B, L, 3, C) embedded tokens."""
        dtype = self.stream.dtype
        x = torch.stack([self.music_in(music.to(dtype)), self.up_in(up).to(dtype), self.down_in(down).to(dtype)], 2)
        return self.drop(x + self.stream)

    def _heads(self, h):
        """(..., 3, C) final hidden states -> (up logits, down logits) (..., K) in float32."""
        h = self.ln_f(h)
        return self.head_up(h[..., 1, :]).float(), self.head_down(h[..., 2, :]).float()

    # -------------------------------------------------------------- uncached (training, reference)
    def logits(self, music, up, down) -> tuple[torch.Tensor, torch.Tensor]:
        """music (B,L,D) (frame i goes with codes i), up/down (B,L) -> next-code logits (B,L,K) each."""
        b, length = up.shape
        x = self._tokens(music, up, down).reshape(b, 3 * length, -1)
        time_index = torch.arange(length, device=up.device).repeat_interleave(3)
        for block in self.blocks:
            x = block(x, time_index)
        return self._heads(x.reshape(b, length, 3, -1))

    def forward(self, batch: dict):
        """batch {"music": (B,L,D), "up": (B,L), "down": (B,L)} -> (CE_up + CE_down, logs)."""
        music, up, down = batch["music"], batch["up"], batch["down"]
        lu, ld = self.logits(music[:, 1:], up[:, :-1], down[:, :-1])
        ce_up = F.cross_entropy(lu.reshape(-1, lu.shape[-1]), up[:, 1:].reshape(-1))
        ce_down = F.cross_entropy(ld.reshape(-1, ld.shape[-1]), down[:, 1:].reshape(-1))
        loss = ce_up + ce_down
        with torch.no_grad():
            acc_up = (lu.argmax(-1) == up[:, 1:]).float().mean().item()
            acc_down = (ld.argmax(-1) == down[:, 1:]).float().mean().item()
        return loss, {"loss": loss.item(), "ce_up": ce_up.item(), "ce_down": ce_down.item(),
                      "acc_up": acc_up, "acc_down": acc_down}

    # -------------------------------------------------------------- streaming with a KV cache
    def start(self, batch_size: int, device=None) -> StreamState:
        """An empty stream for ``batch_size`` takes (the cache fills as steps are fed)."""
        return StreamState(caches=[[None, None] for _ in self.blocks])

    @torch.no_grad()
    def step(self, state: StreamState, music_t, up_t, down_t) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one time step — music_t (B,D), up_t (B,), down_t (B,) — and get the next codes' logits (B,K)
        each. Equal to ``logits(...)[:, -1]`` over everything fed so far; costs three tokens."""
        x = self._tokens(music_t[:, None], up_t[:, None], down_t[:, None])[:, 0]     # (B, 3, C)
        for block, cache in zip(self.blocks, state.caches):
            x = block.step(x, cache)
        state.steps += 1
        return self._heads(x)
