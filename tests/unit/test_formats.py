"""The output-format registry is the one source: the spec's literal, the capability table, the runtimes'
artifacts and the worker's writers and loaders all come from it."""

from __future__ import annotations

import typing

import pytest

from modelpress_core import capabilities, formats, packed
from modelpress_core.spec import JobSpec
from modelpress_core.steps.quantize import RUNTIME_OUTPUT


def test_the_spec_literal_is_the_registry():
    assert set(typing.get_args(formats.OutputFormatName)) == set(formats.FORMATS)
    assert set(JobSpec.model_json_schema()["properties"]["outputs"]["items"]["enum"]) == set(formats.FORMATS)


def test_the_capability_table_reads_the_registry():
    assert capabilities.OUTPUT_FORMATS == {f.name: f.description for f in formats.FORMATS.values()}
    assert capabilities.OUTPUTS_BY_FORMAT == {"safetensors": ("safetensors", "torchscript", "onnx", "pt2", "packed", "executorch"),
                                              "torchscript": ("torchscript", "onnx")}
    assert RUNTIME_OUTPUT == {"eager": "torchscript", "inductor": "pt2", "onnxruntime": "onnx", "executorch": "executorch"}


def test_file_names_are_unique_and_found_back():
    names = [f.file_name for f in formats.FORMATS.values()]
    assert len(set(names)) == len(names)
    for f in formats.FORMATS.values():
        assert formats.by_file_name(f.file_name) is f
    assert formats.by_file_name("model.pkl") is None
    assert formats.FORMATS["packed"].media_type == packed.MEDIA_TYPE


@pytest.mark.parametrize("name", list(formats.FORMATS))
def test_every_writer_and_loader_resolves(name):
    from worker import export

    assert callable(export.writer(name)) and callable(export.loader(name))
    assert export.ARTIFACT_NAMES[name] == formats.FORMATS[name].file_name
    assert export.MEDIA_TYPES[name] == formats.FORMATS[name].media_type
