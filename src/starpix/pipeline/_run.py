"""Run the stages in order, skipping those whose outputs are up to date (a manifest beside the outputs).

Each stage writes into a temporary directory beside its final one
(``OUTPUT_DIR/.STAGE.tmp-PID``), renamed to ``OUTPUT_DIR/STAGE`` when the stage
succeeds; the manifest (``OUTPUT_DIR/pipeline-manifest.json``) is then
rewritten atomically.  A failed stage leaves the earlier stages' outputs and
manifest entries, and its own previous outputs, as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field

from .._version import __version__
from ..errors import InvalidParameterError, StarpixError
from ._config import STAGE_HELP, STAGES

__all__ = ["run_pipeline", "PipelineResult", "MANIFEST", "stage_keys"]

#: The manifest's file name in the output directory.
MANIFEST = "pipeline-manifest.json"
_SMALL = 1 << 20  # files up to this size are fingerprinted by content


@dataclass
class PipelineResult:
    """What a run did.

    Attributes
    ----------
    output_dir : str
    ran : list of str
        Stages run this time.
    skipped : list of str
        Stages found up to date.
    disabled : list of str
        Stages switched off (or left out by ``only``).
    summaries : dict
        Stage name -> its summary lines (from the manifest for skipped stages).
    seconds : dict
        Stage name -> seconds this run took (0 for a skipped stage).
    report : str or None
        The report file, when there is one.
    """

    output_dir: str
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    disabled: list = field(default_factory=list)
    summaries: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    report: str | None = None


def _fingerprint(path, base_dir):
    """Content hash of a small file; size and modification time of a large one.

    The path is recorded relative to the configuration's directory, so that a
    project moved as a whole stays up to date.
    """
    from ..io import parse_hdu_spec

    name, hdu = parse_hdu_spec(path) if path.endswith("]") else (path, None)
    stat = os.stat(name)
    entry = {"path": os.path.relpath(path, base_dir), "size": stat.st_size}
    if stat.st_size <= _SMALL:
        with open(name, "rb") as handle:
            entry["sha256"] = hashlib.sha256(handle.read()).hexdigest()
    else:
        entry["mtime_ns"] = stat.st_mtime_ns
    return entry


def _stage_inputs(config, name):
    """Input files a stage reads directly (not through another stage)."""
    inputs = config.inputs
    files = []
    image_mode = inputs["exposures"] is None
    if name == "calibrate":
        files += inputs["exposures"]
        files += [config.params["calibrate"][k] for k in ("bias", "dark", "flat") if k in config.params["calibrate"]]
    elif name == "drizzle":
        files += inputs["exposures"]
    elif name in ("find", "stamps", "cutouts") and image_mode:
        files.append(inputs["image"])
    elif name == "photometry":
        if image_mode:
            files.append(inputs["image"])
        files += [f for f in (inputs["psf"], inputs["truth"]) if f is not None]
    if name == "cutouts":
        files.append(inputs["targets"])
    if name == "cube":
        files += inputs["ffis"]
        target = config.params["cube"].get("targets") or inputs["targets"]
        if target is not None:
            files.append(target)
    if name == "report":
        files += [f for f in (inputs["psf"], inputs["truth"]) if f is not None]
    return files


def _upstream(config, name, available):
    """Stages whose outputs ``name`` reads, among those that apply to this configuration."""
    active = config.active
    if name == "report":
        return [s for s in STAGES if s != "report" and s in active and s in available]
    deps = {"calibrate": [], "drizzle": ["calibrate"] if "calibrate" in available else [],
            "find": ["drizzle"], "photometry": ["find"], "stamps": ["photometry", "find"],
            "cutouts": ["drizzle"], "cube": []}[name]
    return [d for d in deps if d in active]


def _key(config, name, upstream_keys):
    params = dict(config.params[name])
    if name == "report":
        params["report_format"] = config.report_format
    if name in ("find", "photometry", "stamps", "report"):
        params["match_radius"] = config.inputs["match_radius"]
    record = {"stage": name, "version": __version__, "params": params,
              "inputs": [_fingerprint(f, config.base_dir) for f in _stage_inputs(config, name)],
              "upstream": upstream_keys}
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(output_dir):
    path = os.path.join(output_dir, MANIFEST)
    if not os.path.exists(path):
        return {"stages": {}}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {"stages": {}}  # unreadable: every stage runs again
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return {"stages": {}}
    return data


def _write_manifest(output_dir, manifest):
    path = os.path.join(output_dir, MANIFEST)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _outputs_valid(output_dir, entry):
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for rel, size in outputs.items():
        full = os.path.join(output_dir, rel)
        if not os.path.isfile(full) or os.path.getsize(full) != size:
            return False
    return True


def _list_outputs(output_dir, stage_dir):
    outputs = {}
    for root, _, files in os.walk(stage_dir):
        for name in files:
            full = os.path.join(root, name)
            outputs[os.path.relpath(full, output_dir)] = os.path.getsize(full)
    return outputs


def stage_keys(config, *, only=None, force=False):
    """Plan a run: which stages run, which are up to date, their keys; checks that every stage has its inputs.

    Returns
    -------
    dict
        ``{'run': [...], 'skip': [...], 'off': [...], 'keys': {...}}``.
    """
    manifest = read_manifest(config.output_dir)
    entries = manifest["stages"]
    if only is not None and only not in STAGES:
        raise InvalidParameterError(f"--only {only}: unknown stage (stages: {', '.join(STAGES)})")
    if only is not None and only not in config.active:
        raise InvalidParameterError(f"--only {only}: the stage does not apply to these inputs "
                                    f"({_why_inactive(only)})")
    keys, plan_run, plan_skip, off, available = {}, [], [], [], set()
    for name in config.active:
        selected = config.enabled[name] if only is None else name == only
        entry = entries.get(name)
        old_valid = entry is not None and _outputs_valid(config.output_dir, entry)
        if not selected:
            off.append(name)
            if old_valid:
                keys[name] = entry["key"]
                available.add(name)
            continue
        upstream = _upstream(config, name, available | {name})
        for dep in upstream:
            if dep not in available:
                raise InvalidParameterError(
                    f"stage {name} needs the outputs of stage {dep}, which is switched off and has no outputs "
                    f"in {config.output_dir}: enable it ([stages] {dep} = true)")
        key = _key(config, name, {dep: keys[dep] for dep in upstream})
        keys[name] = key
        available.add(name)
        if not force and old_valid and entry.get("key") == key:
            plan_skip.append(name)
        else:
            plan_run.append(name)
    return {"run": plan_run, "skip": plan_skip, "off": off, "keys": keys, "manifest": manifest}


def _why_inactive(name):
    return {"calibrate": "[inputs] has no exposures", "drizzle": "[inputs] has no exposures",
            "cutouts": "[inputs] has no targets", "cube": "[inputs] has no ffis"}.get(name, "")


def _remove_leftovers(output_dir):
    """Temporary stage directories a killed run left behind."""
    import re

    pattern = re.compile(r"\.(%s)\.(tmp|old)-\d+$" % "|".join(STAGES))
    for name in os.listdir(output_dir):
        if pattern.match(name) and os.path.isdir(os.path.join(output_dir, name)):
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def run_pipeline(config, *, only=None, force=False, executor=None, max_workers=None, progress_bar=False,
                 echo=None):
    """Run a pipeline configuration.

    Parameters
    ----------
    config : PipelineConfig, str or os.PathLike
        A checked configuration (:func:`load_config`) or a TOML file name.
    only : str, optional
        Run this stage alone (with the outputs earlier runs left for the
        stages it reads).
    force : bool
        Run the selected stages even when their outputs are up to date.
    executor, max_workers
        Passed to the batch stages (see :func:`starpix.parallel.map_jobs`).
    progress_bar : bool
        A progress bar over the stages, and those of the batch stages.
    echo : callable, optional
        Called with each line of the run's account (e.g. ``print``); None:
        silent.

    Returns
    -------
    PipelineResult

    Raises
    ------
    StarpixError
        A bad configuration (before anything is written), or the error of the
        stage that failed (its outputs are left as they were before the run).
    """
    from .._progress import progress
    from ._config import load_config
    from ._report import write_report
    from ._stages import STAGE_FUNCTIONS, StageContext

    if not hasattr(config, "params"):
        config = load_config(config)
    say = echo or (lambda line: None)
    plan = stage_keys(config, only=only, force=force)
    manifest = plan["manifest"]
    output_dir = config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    _remove_leftovers(output_dir)
    ctx = StageContext(config=config, output_dir=output_dir, executor=executor, max_workers=max_workers,
                       progress_bar=progress_bar)
    ctx.notes["_available"] = set(plan["keys"])
    result = PipelineResult(output_dir=output_dir, disabled=list(plan["off"]))
    order = [name for name in config.active if name in plan["run"] or name in plan["skip"]]
    with progress(total=len(order), enabled=progress_bar, desc="pipeline", unit="stage") as bar:
        for name in order:
            say(f"== {name}: {STAGE_HELP[name]}")
            entry = manifest["stages"].get(name, {})
            if name in plan["skip"]:
                result.skipped.append(name)
                result.summaries[name] = list(entry.get("summary", []))
                result.seconds[name] = 0.0
                for line in result.summaries[name]:
                    say(f"   {line}")
                say("   up to date (skipped)")
                bar.update(1)
                continue
            final = ctx.stage_dir(name)
            tmp = os.path.join(output_dir, f".{name}.tmp-{os.getpid()}")
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
            os.makedirs(tmp)
            start = time.perf_counter()
            try:
                if name == "report":
                    lines = write_report(ctx, tmp, final, result)
                else:
                    lines = STAGE_FUNCTIONS[name](ctx, tmp)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, StarpixError) and not str(exc).startswith("stage "):
                    raise type(exc)(f"stage {name}: {exc}") from exc
                raise
            seconds = time.perf_counter() - start
            lines = [line.replace(tmp, final) for line in lines]
            old = None
            if os.path.exists(final):
                old = os.path.join(output_dir, f".{name}.old-{os.getpid()}")
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            manifest.setdefault("stages", {})[name] = {
                "key": plan["keys"][name], "outputs": _list_outputs(output_dir, final), "summary": lines,
                "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "params": config.params[name]}
            manifest["starpix"] = __version__
            _write_manifest(output_dir, manifest)
            result.ran.append(name)
            result.summaries[name] = lines
            result.seconds[name] = seconds
            for line in lines:
                say(f"   {line}")
            say(f"   done in {seconds:.2f} s")
            bar.update(1)
    report_entry = manifest["stages"].get("report")
    # the report is current when it ran or was up to date, or when it was left out and nothing else ran
    current = "report" in plan["run"] or "report" in plan["skip"] or not result.ran
    if report_entry and "report" in plan["keys"] and current:
        for rel in report_entry["outputs"]:
            if rel.endswith(("report.md", "report.html")):
                result.report = os.path.join(output_dir, rel)
    return result
