"""save_adapter / load_adapter: what is saved, the per-tensor checks, and saves that cannot half-happen."""

import copy
import os

import pytest
import torch

from c3a_tutorial import adapter_layers, adapter_state_dict, add_adapters, load_adapter, save_adapter
from c3a_tutorial.c3a import adapter_file

from ..bad_input import unwritable_directory
from ..conftest import TinyModel

SUFFIXES = [".safetensors", ".pt"]


def _trained(classes: int = 3, method: str = "c3a", base=None, **kwargs):
    """A TinyModel with adapters and a head that differ from their initial values, as after training."""
    kwargs = kwargs or {"block_size": 4}
    base = TinyModel(classes=classes).double() if base is None else copy.deepcopy(base)
    model = add_adapters(base, method, ["query", "value"], ["classifier"], **kwargs)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name, p in layer.named_parameters():
                if not name.startswith("base_layer."):
                    p.normal_()
        model.classifier.weight.add_(1.0)
    return model


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model, before):
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_head_survives_a_save_after_an_inference_load(tmp_path, suffix):
    """Issue #15: loading with trainable=False froze the head, and the next save silently dropped it."""
    base = TinyModel().double()
    trained = _trained(base=base)
    first, second = tmp_path / f"first{suffix}", tmp_path / f"second{suffix}"
    save_adapter(trained, first)

    inference = load_adapter(copy.deepcopy(base), first, trainable=False)
    assert not any(p.requires_grad for p in inference.parameters())
    assert set(adapter_state_dict(inference)) == set(adapter_state_dict(trained))
    save_adapter(inference, second)

    again = load_adapter(copy.deepcopy(base), second)
    x = torch.randn(4, 12, dtype=torch.float64)
    torch.testing.assert_close(again(x), trained(x), atol=0, rtol=0)
    torch.testing.assert_close(again.classifier.weight, trained.classifier.weight, atol=0, rtol=0)
    # trainable=True (the default) re-opens the head as well as the adapters.
    assert again.classifier.weight.requires_grad


def test_saved_set_does_not_follow_requires_grad(tmp_path):
    model = _trained()
    expected = set(adapter_state_dict(model))
    assert {"classifier.weight", "classifier.bias"} <= expected
    model.requires_grad_(False)
    assert set(adapter_state_dict(model)) == expected
    model.layers[0].norm.requires_grad_(True)  # opened by hand, not by add_adapters: not part of the adapter
    assert set(adapter_state_dict(model)) == expected


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("file_classes,model_classes", [(1, 3), (3, 2)])
@pytest.mark.parametrize("with_adapters", [False, True])
def test_a_head_of_another_size_is_refused_and_nothing_changes(
    tmp_path, suffix, file_classes, model_classes, with_adapters
):
    """Without the per-tensor check a 1-class head broadcasts into a 3-class model, and a 3-class head
    into a 2-class model fails half-way, after other tensors were overwritten."""
    path = tmp_path / f"head{suffix}"
    save_adapter(_trained(classes=file_classes), path)
    model = TinyModel(classes=model_classes).double()
    if with_adapters:
        add_adapters(model, "c3a", ["query", "value"], ["classifier"], block_size=4)
    before = _snapshot(model)
    f, m = file_classes, model_classes  # the bias or the weight, whichever is checked first
    wanted = rf"'classifier\.(bias|weight)' has shape \({f}(,|, 12)\) in the file but \({m}(,|, 12)\) in the model"
    with pytest.raises(ValueError, match=wanted):
        load_adapter(model, path)
    _assert_unchanged(model, before)
    assert len(adapter_layers(model)) == (4 if with_adapters else 0)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"adapter{suffix}"
    model = _trained()
    save_adapter(model, path)
    saved = path.read_bytes()

    def crash_midway(*args, **kwargs):
        target = next(a for a in args if isinstance(a, (str, os.PathLike)))
        with open(target, "wb") as f:  # what a killed process or a full disk leaves: some bytes, then nothing
            f.write(b"\x00" * 100)
        raise OSError("No space left on device")

    monkeypatch.setattr(adapter_file, "save_file", crash_midway)
    monkeypatch.setattr(torch, "save", crash_midway)
    with torch.no_grad():
        model.classifier.weight.add_(5.0)
    with pytest.raises(OSError, match="No space left"):
        save_adapter(model, path)
    monkeypatch.undo()

    assert path.read_bytes() == saved
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    reloaded = load_adapter(TinyModel().double(), path)
    torch.testing.assert_close(reloaded.classifier.weight, model.classifier.weight - 5.0, atol=0, rtol=0)


def test_a_save_replaces_the_previous_file(tmp_path):
    path = tmp_path / "adapter.safetensors"
    model = _trained()
    save_adapter(model, path)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    save_adapter(model, path)
    torch.testing.assert_close(load_adapter(TinyModel().double(), path).classifier.weight, model.classifier.weight)
    assert sorted(os.listdir(tmp_path)) == ["adapter.safetensors"]


def test_directories_are_explained(tmp_path):
    model = _trained()
    peft_dir = tmp_path / "peft_adapter"
    peft_dir.mkdir()
    (peft_dir / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"PEFT adapter directory.*import_from_peft\(directory, model=base_model\)"):
        load_adapter(TinyModel().double(), peft_dir)
    with pytest.raises(ValueError, match="is a directory: load_adapter reads one file"):
        load_adapter(TinyModel().double(), tmp_path)
    with pytest.raises(ValueError, match="is a directory: give save_adapter a file name"):
        save_adapter(model, tmp_path)


def test_files_record_what_was_trainable(tmp_path):
    model = _trained(method="lora", rank=2)
    save_adapter(model, tmp_path / "a.pt")
    metadata, state = adapter_file._read_adapter_file(str(tmp_path / "a.pt"))
    assert metadata["trainable"] == ["classifier.bias", "classifier.weight"]
    assert set(state) == set(metadata["trainable"]) | {
        f"layers.{i}.{n}.lora_{ab}" for i in range(2) for n in ("query", "value") for ab in "AB"
    }


def test_a_file_without_the_record_still_keeps_its_head(tmp_path):
    """Files written before the record existed: every saved tensor that is not an adapter weight is the record."""
    base = TinyModel().double()
    trained = _trained(base=base)
    state = {k: v.cpu() for k, v in adapter_state_dict(trained).items()}
    metadata = adapter_file.adapter_metadata(trained)
    del metadata["trainable"]
    torch.save({"metadata": metadata, "state_dict": state}, tmp_path / "old.pt")
    loaded = load_adapter(copy.deepcopy(base), tmp_path / "old.pt", trainable=False)
    assert set(adapter_state_dict(loaded)) == set(state)


def _rewrite(path, change):
    """Rewrite the adapter file at ``path`` with ``change(state)`` applied to its tensors (metadata kept)."""
    metadata, state = adapter_file._read_adapter_file(str(path))
    change(state)
    writer = adapter_file._write_safetensors if str(path).endswith(".safetensors") else adapter_file._write_torch
    writer(str(path), state, metadata)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    "change, named",
    [
        (lambda s: s.pop("layers.1.value.kernel"), r"missing \['layers.1.value.kernel'\]"),
        (lambda s: s.pop("classifier.weight"), r"missing \['classifier.weight'\]"),
        (lambda s: s.update({"layers.0.norm.weight": torch.ones(12, dtype=torch.float64)}),
         r"holds \['layers.0.norm.weight'\], which its metadata does not describe"),
    ],
    ids=["kernel missing", "head missing", "unexpected tensor"],
)  # fmt: skip
@pytest.mark.parametrize("into", ["fresh model", "model with adapters"])
def test_missing_and_unexpected_tensors_are_refused_by_name(tmp_path, suffix, change, named, into):
    """Issue #18: a missing kernel stayed zero (or kept a stale value from an earlier load), a missing head stayed
    random, and a tensor the file does not describe was loaded, although every name is said to be checked."""
    path = tmp_path / f"adapter{suffix}"
    save_adapter(_trained(), path)
    _rewrite(path, change)
    model = TinyModel().double()
    if into == "model with adapters":
        save_adapter(_trained(), tmp_path / f"earlier{suffix}")
        load_adapter(model, tmp_path / f"earlier{suffix}")  # an earlier load: its kernels must not survive silently
    before = _snapshot(model)
    with pytest.raises(ValueError, match=named):
        load_adapter(model, path)
    _assert_unchanged(model, before)


def test_strict_false_loads_what_is_there_and_warns(tmp_path):
    path = tmp_path / "adapter.pt"
    trained = _trained()
    save_adapter(trained, path)
    _rewrite(path, lambda s: s.pop("classifier.weight"))
    model = TinyModel().double()
    head = model.classifier.weight.detach().clone()
    with pytest.warns(UserWarning, match="missing.*'classifier.weight'.*left as they were"):
        load_adapter(model, path, strict=False)
    torch.testing.assert_close(model.classifier.weight, head, atol=0, rtol=0)
    torch.testing.assert_close(model.layers[1].value.kernel, trained.layers[1].value.kernel, atol=0, rtol=0)


def test_shapes_are_compared_not_element_counts(tmp_path):
    """Issue #18: a (12, 3) tensor has the element count of a (3, 12) one; a check on counts let it through and
    the load failed half-way, with adapters already added."""
    path = tmp_path / "adapter.pt"
    save_adapter(_trained(), path)
    _rewrite(path, lambda s: s.update({"classifier.weight": s["classifier.weight"].T.contiguous()}))
    model = TinyModel().double()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"'classifier.weight' has shape \(12, 3\) in the file but \(3, 12\)"):
        load_adapter(model, path)
    _assert_unchanged(model, before)
    assert not adapter_layers(model)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("where", ["missing folder", "unwritable folder", "parent is a file"])
def test_saving_where_no_file_can_be_written_is_one_clear_error(tmp_path, suffix, where):
    """Issue #18: a raw SafetensorError / 'enforce fail at inline_container.cc' from deep inside."""
    if where == "missing folder":
        path, fragment = tmp_path / "no" / "such" / f"a{suffix}", "does not exist"
    elif where == "unwritable folder":
        path, fragment = unwritable_directory(tmp_path) / f"a{suffix}", "is not writable"
    else:
        (tmp_path / "file").write_text("x")
        path, fragment = tmp_path / "file" / f"a{suffix}", "is a file, not a directory"
    with pytest.raises(ValueError, match=f"Cannot save the adapter to .*{fragment}"):
        save_adapter(_trained(), path)
    assert not os.path.exists(path)
