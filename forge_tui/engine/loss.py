"""Training losses over labelled positions only, with the output head run in chunks.

A causal LM's forward builds logits at every position: batch x length x vocabulary floats (for the
embedded default at batch 8 x 256 tokens, about 400 MB in fp32), most of them at prompt and pad
positions that carry no loss. Here the decoder runs once, the hidden states at labelled positions
are gathered, and the head runs over them in chunks of HEAD_CHUNK positions; past one chunk, each
chunk's logits are recomputed in backward instead of kept. The sum is the same cross-entropy as over
the full logits (tests/engine/test_loss.py checks it against transformers' own loss).

Rows marked `distill` (self-distilled rehearsal) are scored by KL divergence from the base model's
distribution (the adapter switched off) at the same positions: the whole distribution, not only the
greedy token, tells the adapter what to leave alone. The base's distribution is made chunk by chunk
from its hidden states too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HEAD_CHUNK = 1024
# Config keys of heads that do more than a matmul (softcapping, scaling): those take the full forward.
_HEAD_EXTRAS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def base_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _parts(model: Any) -> tuple[Any, Any] | None:
    """(decoder, output head) when the logits are exactly head(decoder(x)); else None."""
    base = base_model(model)
    if any(getattr(base.config, key, None) for key in _HEAD_EXTRAS):
        return None
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    if decoder is base or head is None:
        return None
    return decoder, head


def _hidden(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(hidden states or logits, head) — the head is None when the forward already gave logits.

    No attention mask: batches are right-padded, so under the causal mask a real token never sees
    a pad (pads only follow it), and the outputs at real positions are exactly those of the masked
    forward. Without a padding mask attention takes the fused causal kernels (flash on CPU and GPU)
    instead of materialising length x length scores per head: less memory and time.
    """
    parts = _parts(model)
    if parts is None:
        return model(input_ids=batch["input_ids"]).logits, None
    decoder, head = parts
    return decoder(input_ids=batch["input_ids"]).last_hidden_state, head


def _chunked(fn: Callable[..., Any], *tensors: Any) -> Any:
    """Sum of fn over HEAD_CHUNK-row slices of the tensors, recomputing each in backward when
    there is more than one (so at most one chunk's logits are alive at a time)."""
    from torch.utils.checkpoint import checkpoint

    rows = tensors[0].shape[0]
    if rows <= HEAD_CHUNK:
        return fn(*tensors)
    return sum(checkpoint(fn, *(t[i:i + HEAD_CHUNK] for t in tensors), use_reentrant=False)
               for i in range(0, rows, HEAD_CHUNK))


def _logits(head: Any, states: Any) -> Any:
    return (head(states) if head is not None else states).float()


def token_loss_sum(model: Any, batch: dict[str, Any], kl_weight: float = 1.0) -> tuple[Any, int]:
    """Summed loss over the batch's loss-bearing positions (its `hard` and `soft` indices, see
    batches.label_positions), and how many there were: cross-entropy on the labels at `hard` ones,
    KL from the base model (the adapter switched off) at `soft` ones, times `kl_weight`."""
    import torch
    import torch.nn.functional as F

    hard, soft = batch["hard"], batch["soft"]
    states, head = _hidden(model, batch)
    states = states[:, :-1].flatten(0, 1)
    targets = batch["labels"][:, 1:].flatten()
    total = _chunked(lambda s, t: F.cross_entropy(_logits(head, s), t, reduction="sum"), states[hard], targets[hard])
    if len(soft):
        with torch.no_grad(), model.disable_adapter():
            teacher, _ = _hidden(model, batch)
        total = total + kl_weight * _chunked(lambda s, t: _kl_from_base(model, head, s, t), states[soft],
                                             teacher[:, :-1].flatten(0, 1)[soft])
    return total, len(hard) + len(soft)


def _kl_from_base(model: Any, head: Any, states: Any, teacher: Any) -> Any:
    """KL of the adapted distribution from the base model's at the same positions; the base's
    log-probabilities are made per chunk, from its hidden states, so no full-vocabulary tensor
    outlives its chunk."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad(), model.disable_adapter():
        reference = torch.log_softmax(_logits(head, teacher), dim=-1)
    return F.kl_div(torch.log_softmax(_logits(head, states), dim=-1), reference, log_target=True, reduction="sum")
