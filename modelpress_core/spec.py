"""The job spec: the public contract of ``POST /jobs`` (see the README, "The job spec")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from modelpress_core.capabilities import Problem, problems_for, quantize_runtime
from modelpress_core.formats import RUNTIME_OUTPUT, OutputFormatName
from modelpress_core import strict_json
from modelpress_core.bounds import INPUT_DIM_MAX, SEED_MAX, check_config
from modelpress_core.errors import InvalidSpec
from modelpress_core.goal import Goal
from modelpress_core.steps import Step

ModelFormat = Literal["safetensors", "torchscript"]
OutputFormat = OutputFormatName  # the registry's names (modelpress_core/formats.py)
Device = Literal["cpu", "cuda", "auto"]
DType = Literal["float32", "float16", "bfloat16", "int64", "int32"]


FLOAT_KINDS = frozenset({"quantize:kmeans"})  # quantize kinds whose model stays plain float (weight sharing)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(Strict):
    shape: list[Annotated[int, Field(ge=1, le=INPUT_DIM_MAX)]] = Field(
        min_length=1, max_length=8, description="Example input shape, batch first, e.g. [1, 784]."
    )
    dtype: DType = "float32"

    @model_validator(mode="after")
    def _positive(self) -> "InputSpec":
        if any(d < 1 for d in self.shape):
            raise ValueError("every dimension of input.shape must be >= 1")
        if _product(self.shape) > 50_000_000:
            raise ValueError("input.shape is too large (over 50M elements)")
        return self


class ModelSpec(Strict):
    format: ModelFormat = Field(default="safetensors", description="How the uploaded `model` part is stored.")
    architecture: str | None = Field(
        default=None, min_length=1, max_length=100, description="A name from GET /architectures (safetensors uploads only)."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The architecture's config.")
    input: InputSpec | None = Field(
        default=None, description="Example input; default: the architecture's. Required for TorchScript uploads."
    )

    @field_validator("config")
    @classmethod
    def _bounded_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return check_config(config)

    @model_validator(mode="after")
    def _format_needs(self) -> "ModelSpec":
        if self.format == "safetensors" and self.architecture is None:
            raise ValueError("a safetensors state_dict needs model.architecture (see GET /architectures)")
        if self.format == "torchscript":
            if self.architecture is not None or self.config:
                raise ValueError("a TorchScript archive carries its own code: leave out model.architecture and model.config")
            if self.input is None:
                raise ValueError("a TorchScript archive has no architecture to take a default input from: give model.input")
        return self


class EvaluateSpec(Strict):
    latency: bool = True
    batch_sizes: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default=[1], min_length=1, max_length=4)
    threads: int = Field(default=1, ge=1, le=256, description="torch threads while timing (1 is the most reproducible).")

    @model_validator(mode="after")
    def _batches(self) -> "EvaluateSpec":
        if any(b < 1 or b > 1024 for b in self.batch_sizes):
            raise ValueError("batch_sizes must be between 1 and 1024")
        return self


class JobSpec(Strict):
    model: ModelSpec
    goal: Goal | None = Field(
        default=None,
        description="What the result must achieve; the worker searches candidate pipelines, cheapest first, until one meets it.",
    )
    steps: list[Step] = Field(
        default_factory=list, max_length=16, validate_default=True,
        description="Run in order; a list is a pipeline. Optional when a `goal` is given (then, if given, tried first).",
    )
    device: Device = "cpu"
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    outputs: list[OutputFormat] = Field(
        default_factory=list,
        description="Artifact formats; default: packed after quantize:kmeans, safetensors when the model stays plain float, else the "
        "quantize step's runtime's format (eager: torchscript, inductor: pt2, onnxruntime: onnx).",
    )
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="Seeds every random choice of the job (torch, synthetic data).")

    @field_validator("steps")
    @classmethod
    def _steps_or_goal(cls, steps: list, info: ValidationInfo) -> list:
        if not steps and "goal" in info.data and info.data["goal"] is None:
            raise ValueError("give 'steps' (a pipeline), a 'goal' (searched for), or both")
        return steps

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        """Every rule across fields; the capability table (``problems_for``) decides what applies to what.

        Rules it already decides are not repeated here (a test walks every cell of the table)."""
        problems: list[Problem] = []
        if self.goal is not None and self.goal.min_speedup is not None and not self.evaluate.latency:
            problems.append(Problem("evaluate.latency", "goal.min_speedup needs latency measurements; leave evaluate.latency true",
                                    "invalid"))
        problems += problems_for(self.model.format, self.device, list(self.steps), list(self.outputs))
        problems += _order_problems(list(self.steps))
        if self.model.format == "torchscript":
            for i, step in enumerate(self.steps):
                if step.method == "distill" and step.student.prune_amount is not None:
                    problems.append(Problem(
                        f"steps.{i}.student.prune_amount",
                        "a pruned-copy student needs the model's Python module graph; "
                        "upload a safetensors state_dict with an architecture, or name a student architecture"))
        if len(set(self.outputs)) != len(self.outputs):
            problems.append(Problem("outputs", "each format at most once", "invalid"))
        if problems:
            raise SpecProblems(problems)
        return self

    @property
    def resolved_outputs(self) -> list[str]:
        if self.outputs:
            return list(self.outputs)
        runtime = quantize_runtime(list(self.steps))
        if runtime is not None:
            return [RUNTIME_OUTPUT[runtime]]
        if self.model.format == "torchscript" or any(s.method == "quantize" and s.label not in FLOAT_KINDS for s in self.steps):
            return ["torchscript"]
        if any(s.label in FLOAT_KINDS for s in self.steps):
            return ["packed"]
        return ["safetensors"]


class SpecProblems(ValueError):
    """Raised inside validation with each problem's own location; ``parse_spec`` lifts them into the 422's errors."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.loc}: {p.msg}" for p in problems))
        self.problems = problems


def _order_problems(steps: list) -> list[Problem]:
    """Quantization comes last, once: nothing may follow it."""
    quantize_at = next((i for i, s in enumerate(steps) if s.method == "quantize"), None)
    if quantize_at is None or quantize_at + 1 >= len(steps):
        return []
    label, i, later = steps[quantize_at].label, quantize_at + 1, steps[quantize_at + 1]
    if label in FLOAT_KINDS:
        why = ("it would break the shared-weight codebooks (pruning adds a zero, training or quantizing moves weights off their "
               "centroids); put quantize:kmeans last (it fine-tunes its codebooks itself on the train data)")
    else:
        why = "a quantized model's weights can no longer be pruned, factorized or quantized again; put quantization last"
    return [Problem(f"steps.{i}", f"{later.label} cannot follow steps.{quantize_at} ({label}): {why}", "invalid")]


def _errors_of(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as ``{loc, msg, type}``: a ``SpecProblems`` becomes its own problems, each at its location, and
    a validator's message loses pydantic's "Value error, " prefix."""
    errors = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, SpecProblems):
            errors += [{"loc": ".".join(x for x in (loc, p.loc) if x), "msg": p.msg, "type": p.type} for p in cause.problems]
        elif isinstance(cause, ValueError):
            errors.append({"loc": loc, "msg": str(cause), "type": e["type"]})
        else:
            errors.append({"loc": loc, "msg": e["msg"], "type": e["type"]})
    return errors


def parse_spec(text: str | bytes) -> JobSpec:
    """Parse and validate spec JSON text; raise ``InvalidSpec`` naming the wrong fields.

    The text must be strict JSON first (no duplicate keys at any depth, no NaN/Infinity): both
    parsers then agree on what it says, and pydantic validates it."""
    try:
        strict_json.loads(text)
    except strict_json.DuplicateKey as exc:
        raise InvalidSpec(
            f"the spec has the key {exc.key!r} twice in one object; each key at most once",
            errors=[{"loc": exc.key, "msg": "duplicate key", "type": "json_duplicate_key"}],
        ) from None
    except strict_json.NonFiniteNumber as exc:
        raise InvalidSpec(f"the spec is not valid JSON: {exc}", errors=[{"loc": "spec", "msg": str(exc), "type": "json_invalid"}]) from None
    except RecursionError:
        raise InvalidSpec("the spec is nested too deeply", errors=[{"loc": "spec", "msg": "nested too deeply", "type": "json_invalid"}]) from None
    except ValueError:
        pass  # malformed JSON: pydantic's error below says where
    try:
        return JobSpec.model_validate_json(text)
    except ValidationError as exc:
        errors = _errors_of(exc)
        first = errors[0]
        detail = f"{first['loc'] or 'spec'}: {first['msg']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        raise InvalidSpec(detail, errors=errors) from None


def _product(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
