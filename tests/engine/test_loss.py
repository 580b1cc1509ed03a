"""The labelled-positions loss against transformers' own: same value, same gradients, chunked or not;
distilled rows score zero against an untouched adapter and more once it moves."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from forge_tui.engine import loss
from forge_tui.engine.batches import IGNORE, label_positions


def _peft_model(tie: bool = True):
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=97, tie_word_embeddings=tie, max_position_embeddings=64)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # a trained adapter: B is no longer zero
            torch.nn.init.normal_(parameter, std=0.2)
    return model


def _batch(rows: int = 3, width: int = 12) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (rows, width), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a right-padded row
    labels = ids.clone()
    labels[:, :5] = IGNORE  # the prompt carries no loss
    labels[mask == 0] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **label_positions(labels)}


def _reference(model, batch) -> torch.Tensor:
    """transformers' mean loss over the same positions, as a sum."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return out.loss * int((batch["labels"][:, 1:] != IGNORE).sum())


def _grads(model) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("chunk", [loss.HEAD_CHUNK, 4])
@pytest.mark.parametrize("tie", [True, False])
def test_the_loss_and_its_gradients_match_transformers(monkeypatch, chunk: int, tie: bool) -> None:
    monkeypatch.setattr(loss, "HEAD_CHUNK", chunk)
    model, batch = _peft_model(tie), _batch()
    expected = _reference(model, batch)
    expected.backward()
    expected_grads = _grads(model)
    total, count = loss.token_loss_sum(model, batch)
    total.backward()
    assert count == int((batch["labels"][:, 1:] != IGNORE).sum())
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(model), expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_distilled_rows_score_kl_from_the_base_model() -> None:
    model, batch = _peft_model(), _batch()
    batch.update(label_positions(batch["labels"], torch.tensor([False, True, True])))
    labels = batch["labels"].clone()
    labels[1:] = IGNORE
    hard_only = {**batch, "labels": labels, **label_positions(labels)}
    with torch.no_grad():
        moved, _ = loss.token_loss_sum(model, batch)
        cross_entropy, _ = loss.token_loss_sum(model, hard_only)
        assert float(moved) > float(cross_entropy) + 1e-3  # the adapter moved the distilled rows away from base
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.zero_()  # adapter back to the identity: student == teacher on every row
        untouched, _ = loss.token_loss_sum(model, batch)
        baseline, _ = loss.token_loss_sum(model, hard_only)
    torch.testing.assert_close(untouched, baseline, rtol=1e-6, atol=1e-4)


def test_distilled_rows_chunked_give_the_same_loss_and_gradients(monkeypatch) -> None:
    """The base model's distribution is made per chunk (never for all rows at once): same KL, same
    gradients as in one piece."""
    model, batch = _peft_model(), _batch()
    batch.update(label_positions(batch["labels"], torch.tensor([False, True, True])))
    whole, _ = loss.token_loss_sum(model, batch)
    whole.backward()
    expected = _grads(model)
    monkeypatch.setattr(loss, "HEAD_CHUNK", 4)
    chunked, _ = loss.token_loss_sum(model, batch)
    chunked.backward()
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(model), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _hf_step(model, optimizer, batch) -> float:
    """The plain Hugging Face step: mean loss from the model itself, backward, clip, step."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.loss)


def test_the_engine_step_follows_the_plain_loss_curve() -> None:
    """Same adapter, data order and seed: the engine's step (micro-batches of 2, token-weighted
    accumulation, labelled positions only) and the plain one trace the same loss curve."""
    from forge_tui.engine.batches import Encoded, collate
    from forge_tui.engine.train import train_batch

    generator = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(2):
        rows = []
        for _ in range(4):
            length = int(torch.randint(8, 24, (1,), generator=generator))
            ids = torch.randint(3, 97, (length,), generator=generator).tolist()
            rows.append(Encoded(tuple(ids), (IGNORE,) * 4 + tuple(ids[4:]), False))
        batches.append(rows)
    batches *= 4  # two batches seen four times each: the loss must fall
    engine, plain = _peft_model(), _peft_model()
    engine_params = [p for p in engine.parameters() if p.requires_grad]
    engine_opt = torch.optim.AdamW(engine_params, lr=1e-2)
    plain_opt = torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=1e-2)
    engine_curve = [train_batch(engine, engine_opt, engine_params, rows, micro_batch=2, device="cpu", pad=0,
                                max_grad_norm=1.0)[0] for rows in batches]
    plain_curve = [_hf_step(plain, plain_opt, collate(rows, 0)) for rows in batches]
    assert plain_curve[-1] < plain_curve[0]  # it trains: the comparison is not between two flat lines
    torch.testing.assert_close(torch.tensor(engine_curve), torch.tensor(plain_curve), rtol=1e-4, atol=1e-5)


def test_checkpointed_activations_give_the_same_gradients(tiny_model) -> None:
    """The adapter trains through checkpointed layers although the frozen embeddings need no grad."""
    from forge_tui.config import parse_config
    from forge_tui.engine.plan import Plan, add_adapter, load_for_training

    config = parse_config("", tiny_model / "forge.toml")
    batch = _batch()
    grads = []
    for checkpointing in (False, True):
        model = add_adapter(load_for_training(tiny_model, Plan("cpu", False, "fp32", checkpointing)), config)
        assert model.get_base_model().model.gradient_checkpointing == checkpointing
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.2, generator=torch.Generator().manual_seed(3))
        total, _ = loss.token_loss_sum(model, batch)
        total.backward()
        grads.append(_grads(model))
    assert all(g.abs().sum() > 0 for g in grads[1])
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
