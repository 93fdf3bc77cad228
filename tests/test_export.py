"""Source stages exported as weights files (`transferlab-export`) and fine-tuned with init=file.

Source and target stages train for real (Lightning Trainer, real files on disk); the export runs
as its command-line entry point; the files are read back as safetensors.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import CONF_DIR, FAST

from transferlab.analysis.records import flatten_record
from transferlab.cli.export import main as export_main
from transferlab.models import create_model
from transferlab.models.weights import (
    CLASSES_KEY,
    read_weights_file,
    weights_file_metadata,
    write_weights_file,
)
from transferlab.store.fingerprint import file_fingerprint
from transferlab.training.run import train

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_export")

DIGITS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two source stages (digits rotated by 45 degrees: same classes as the digits target;
    gratings: other classes), each with a target run from its checkpoint, exported."""
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    work = tmp_path_factory.mktemp("export")
    results = work / "results"

    def run(*overrides: str) -> dict:
        args = [*FAST, f"paths.results={results}", "threads=1", "logger=[csv]", *overrides]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return train(compose(config_name="config", overrides=args))

    by_source = {
        source: run("study=maker", "init=source", f"data@source={source}", "freeze_depth=3")
        for source in ("digits_rot45", "gratings")
    }
    assert export_main([str(results / "maker"), "--to", str(work / "weights")]) == 0
    return work, run, by_source


def test_each_source_stage_becomes_a_named_safetensors_file_with_a_manifest(made):
    work, _, by_source = made
    rows = list(csv.DictReader((work / "weights" / "manifest.csv").open()))
    assert {r["file"] for r in rows} == {
        "digits_rotate_degrees_45-e2-s0.safetensors",
        "gratings-e2-s0.safetensors",
    }
    for row in rows:
        path = work / "weights" / row["file"]
        assert row["init_weights"] == file_fingerprint(path)
        source = next(r for r in by_source.values() if r["source_run_id"] == row["source_run_id"])
        stored = torch.load(work / "results" / source["source_checkpoint"], weights_only=True)
        exported = read_weights_file(path)
        assert exported.keys() == stored["state_dict"].keys()
        assert all(torch.equal(exported[k], v) for k, v in stored["state_dict"].items())
        metadata = weights_file_metadata(path)
        assert tuple(json.loads(metadata[CLASSES_KEY])) == tuple(stored["classes"])
        assert metadata["transferlab.source_run_id"] == row["source_run_id"]
    again = work / "again"
    assert export_main([str(work / "results" / "maker"), "--to", str(again)]) == 0
    for row in rows:  # the same checkpoint exports to the same bytes: the same init=file runs
        assert file_fingerprint(again / row["file"]) == row["init_weights"]


@pytest.mark.parametrize("source", ["digits_rot45", "gratings"])
def test_a_run_from_the_exported_file_gives_the_numbers_of_the_run_from_the_source(made, source):
    """Same weights, same head rule (kept for the same classes, new for others), same seed:
    the same run, bit for bit, whichever way the weights came."""
    work, run, by_source = made
    stem = {"digits_rot45": "digits_rotate_degrees_45", "gratings": "gratings"}[source]
    path = work / "weights" / f"{stem}-e2-s0.safetensors"
    from_file = run("study=files", "init=file", f"init_path={path}", "freeze_depth=3")
    from_source = by_source[source]
    assert from_file["status"] == from_source["status"] == "completed"
    assert from_file["head_reset"] == from_source["head_reset"] == (source == "gratings")
    assert from_file["metrics"] == from_source["metrics"]
    assert from_file["val_curve"] == from_source["val_curve"]
    row = flatten_record(
        json.loads(
            (work / "results" / "files" / "records" / f"{from_file['run_id']}.json").read_text()
        )
    )
    assert row["source"] == f"{stem}-e2-s0"  # the analysis names the arm by its file
    assert row["source_variant_key"].count(file_fingerprint(path))


def test_a_file_that_names_other_classes_gets_a_new_head_even_of_the_right_size(tmp_path):
    """Sizes alone would keep a 10-way head for any 10 classes; the names decide."""
    model, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16)
    state = model.state_dict()
    plain = write_weights_file(tmp_path / "plain.safetensors", state, {})
    letters = json.dumps([chr(ord("a") + i) for i in range(10)])
    named = write_weights_file(tmp_path / "named.safetensors", state, {CLASSES_KEY: letters})
    same = write_weights_file(
        tmp_path / "same.safetensors", state, {CLASSES_KEY: json.dumps(list(DIGITS))}
    )
    build = dict(num_classes=10, in_chans=3, image_size=16, init="file", target_classes=DIGITS)
    for kept in (plain, same):
        model, info = create_model("test_resnet", init_path=str(kept), **build)
        assert info["head_reset"] is False
        assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"])
    reset, info = create_model("test_resnet", init_path=str(named), **build)
    assert info["head_reset"] is True
    head = "fc.weight"
    assert not torch.equal(reset.state_dict()[head], state[head])


def test_export_refuses_what_it_cannot_export_in_one_line(tmp_path, capsys):
    assert export_main([str(tmp_path / "nowhere"), "--to", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "empty" / "records").mkdir(parents=True)
    assert export_main([str(tmp_path / "empty"), "--to", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "no completed source stage" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()


def test_export_to_a_file_is_one_line(made, tmp_path, capsys):
    work, _, _ = made
    (tmp_path / "taken").write_text("a file, not a folder")
    assert export_main([str(work / "results" / "maker"), "--to", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and err.count("\n") == 1


def test_a_file_candidate_is_loaded_as_a_run_loads_it_whatever_the_channels(made):
    """Scoring a candidate builds it with timm's loader (the stem adapted to one channel), its
    own classifier kept."""
    from transferlab.analysis.ranking import _with_own_head

    work, _, _ = made
    path = work / "weights" / "gratings-e2-s0.safetensors"
    model = _with_own_head("test_resnet", path, {"in_chans": 1, "image_size": 16}, {})
    assert model(torch.zeros(2, 1, 16, 16)).shape == (
        2,
        len(json.loads(weights_file_metadata(path)[CLASSES_KEY])),
    )
