"""The pipeline's configuration: a TOML file read, checked against the stages' parameters, normalized.

Every key is checked before any work starts; an error names the table and the
key (``[photometry] fit_shape``) and the offending value.  Relative paths are
read relative to the configuration file's directory.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from ..errors import InputFileError, InvalidParameterError

__all__ = ["STAGES", "PipelineConfig", "load_config", "parse_config"]

#: Stages in the order they run, each with the stages whose outputs it reads.
STAGES = {
    "calibrate": (),
    "drizzle": ("calibrate",),
    "find": ("drizzle",),
    "photometry": ("find",),
    "stamps": ("photometry",),
    "cutouts": ("drizzle",),
    "cube": (),
    "report": ("calibrate", "drizzle", "find", "photometry", "stamps", "cutouts", "cube"),
}

STAGE_HELP = {
    "calibrate": "calibrate and mask the exposures",
    "drizzle": "drizzle the exposures with cosmic-ray rejection",
    "find": "background and star finding",
    "photometry": "PSF photometry",
    "stamps": "PSF stamps and the stacked extended PSF",
    "cutouts": "cutouts of the catalogue's targets",
    "cube": "cube of full-frame images and target pixel files",
    "report": "the report and its plots",
}

_ANY = object()


class _Kind:
    """A parameter's expected TOML type, with a readable name."""

    def __init__(self, name, check):
        self.name, self.check = name, check


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number_list(n=None):
    def check(value):
        return (isinstance(value, list) and all(_is_number(v) for v in value)
                and (n is None or len(value) in (n if isinstance(n, tuple) else (n,))))
    label = "a list of numbers" if n is None else f"a list of {n if isinstance(n, int) else ' or '.join(map(str, n))} numbers"
    return _Kind(label, check)


BOOL = _Kind("true or false", lambda v: isinstance(v, bool))
INT = _Kind("an integer", _is_int)
NUMBER = _Kind("a number", _is_number)
STRING = _Kind("a string", lambda v: isinstance(v, str))
PATH = _Kind("a file name", lambda v: isinstance(v, str) and v != "")
PATHS = _Kind("a file name, a wildcard or a list of them",
              lambda v: (isinstance(v, str) and v != "") or (isinstance(v, list) and v
                                                              and all(isinstance(p, str) and p for p in v)))
INT_OR_PAIR = _Kind("an integer or a list of two integers",
                    lambda v: _is_int(v) or (isinstance(v, list) and len(v) == 2 and all(_is_int(i) for i in v)))
NUMBER_OR_PAIR = _Kind("a number or a list of two numbers",
                       lambda v: _is_number(v) or (isinstance(v, list) and len(v) == 2
                                                   and all(_is_number(i) for i in v)))
PAIR = _number_list(2)
ANY = _Kind("a value", lambda v: True)


def _choice(*values):
    return _Kind("one of " + ", ".join(repr(v) for v in values), lambda v: v in values)


# Each stage: key -> (kind, default).  Keys also passed to an API keep its names.
_SCHEMA = {
    "pipeline": {
        "output_dir": (STRING, "pipeline-output"),
        "report_format": (_choice("markdown", "html"), "markdown"),
    },
    "inputs": {
        "exposures": (PATHS, None),
        "image": (PATH, None),
        "psf": (PATH, None),
        "truth": (PATH, None),
        "targets": (PATH, None),
        "ffis": (PATHS, None),
        "match_radius": (NUMBER, 1.0),
    },
    "calibrate": {
        "enabled": (BOOL, True),
        "bias": (PATH, None),
        "dark": (PATH, None),
        "flat": (PATH, None),
        "dark_includes_bias": (BOOL, False),
        "flat_low": (NUMBER, 0.5),
        "dark_sigma": (NUMBER, 10.0),
        "saturation": (NUMBER, None),
        "mask_cosmics": (BOOL, False),
        "sigclip": (NUMBER, 4.5),
        "sigfrac": (NUMBER, 0.3),
        "objlim": (NUMBER, 5.0),
        "niter": (INT, 4),
        "readnoise": (NUMBER, None),
        "gain": (NUMBER, None),
        "dq_flag": (INT, 1024),
    },
    "drizzle": {"enabled": (BOOL, True)},  # + the keywords of starpix.drizzle.astrodrizzle
    "find": {
        "enabled": (BOOL, True),
        "box_size": (INT_OR_PAIR, 64),
        "nsigma": (NUMBER, 10.0),
        "threshold": (NUMBER, None),
        "fwhm": (NUMBER, 3.0),
        "method": (_choice("iraf", "dao"), "iraf"),
        "sigma_radius": (NUMBER, 1.5),
        "exclude_border": (BOOL, False),
        "n_brightest": (INT, None),
        "peak_max": (NUMBER, None),
        "min_separation": (NUMBER, None),
        "sharpness_range": (PAIR, _ANY),
        "roundness_range": (PAIR, _ANY),
    },
    "photometry": {
        "enabled": (BOOL, True),
        "fit_shape": (INT_OR_PAIR, [5, 5]),
        "aperture_radius": (NUMBER, 5.0),
        "fitter_maxiters": (INT, 100),
        "fwhm": (NUMBER, None),
        "gain": (NUMBER, None),
        "tile_size": (INT_OR_PAIR, 1024),
        "overlap": (INT, None),
    },
    "stamps": {
        "enabled": (BOOL, True),
        "n_stars": (INT, 25),
        "width": (INT, 51),
        "normradii": (PAIR, [3, 8]),
        "isolation": (NUMBER, 20.0),
        "normop": (STRING, "median"),
        "operator": (STRING, "sigclip-mean"),
        "sigmaclip": (PAIR, [3.0, 0.2]),
        "segment": (BOOL, True),
    },
    "cutouts": {
        "enabled": (BOOL, True),
        "size": (INT_OR_PAIR, 25),
        "png": (BOOL, True),
        "png_size": (INT_OR_PAIR, 64),
        "stretch": (STRING, "asinh"),
        "mode": (_choice("partial", "trim", "strict"), "partial"),
    },
    "cube": {
        "enabled": (BOOL, True),
        "sector": (INT, None),
        "output": (STRING, "cube.fits"),
        "size": (INT_OR_PAIR, 9),
        "targets": (PATH, None),
    },
    "report": {
        "enabled": (BOOL, True),
        "zoom": (INT, 200),
    },
}


@dataclass
class PipelineConfig:
    """A checked configuration.

    Attributes
    ----------
    path : str
        The configuration file (None for a dictionary).
    base_dir : str
        Directory relative paths are read from.
    output_dir : str
        Where every output goes (absolute).
    report_format : str
        'markdown' or 'html'.
    inputs : dict
        ``exposures`` (list of absolute file names or None), ``image``,
        ``psf``, ``truth``, ``targets`` (absolute or None), ``ffis``,
        ``match_radius``.
    params : dict
        Stage name -> its parameters (defaults filled in, ``enabled`` removed).
    enabled : dict
        Stage name -> whether it runs.
    """

    path: str | None
    base_dir: str
    output_dir: str
    report_format: str
    inputs: dict
    params: dict = field(default_factory=dict)
    enabled: dict = field(default_factory=dict)

    @property
    def active(self):
        """Stages that apply to these inputs (their data are there), whether enabled or not."""
        has_exposures = self.inputs["exposures"] is not None
        names = []
        for name in STAGES:
            if name in ("calibrate", "drizzle") and not has_exposures:
                continue
            if name == "cutouts" and self.inputs["targets"] is None:
                continue
            if name == "cube" and self.inputs["ffis"] is None:
                continue
            names.append(name)
        return names


def _read_toml(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise InvalidParameterError(
                f"{path}: reading TOML on Python < 3.11 needs the 'tomli' package (pip install tomli)") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a configuration file") from None
    except PermissionError:
        raise InputFileError(f"{path}: cannot read the configuration file (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParameterError(f"{path}: not valid TOML ({exc})") from None


def load_config(path, overrides=None):
    """Read and check a pipeline configuration file.

    Parameters
    ----------
    path : str or os.PathLike
        A TOML file (see the module documentation of :mod:`starpix.pipeline`).
    overrides : dict, optional
        ``{table: {key: value}}`` merged over the file's values.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    InputFileError
        The file is missing or unreadable, or an input file it names is missing.
    InvalidParameterError
        Not TOML, an unknown table or key, a value of the wrong type or out of
        range; the message names ``[table] key``.
    """
    path = os.fspath(path)
    data = _read_toml(path)
    for table, values in (overrides or {}).items():
        data.setdefault(table, {}).update(values)
    return parse_config(data, base_dir=os.path.dirname(os.path.abspath(path)), path=path)


def _where(path, table, key=None):
    prefix = f"{path}: " if path else ""
    return f"{prefix}[{table}]" + (f" {key}" if key else "")


def _check_table(data, table, schema, path, extra=None):
    values = data.get(table, {})
    if not isinstance(values, dict):
        raise InvalidParameterError(f"{_where(path, table)}: expected a table, got {values!r}")
    out = {}
    for key, value in values.items():
        if key in schema:
            kind, _ = schema[key]
            if not kind.check(value):
                raise InvalidParameterError(f"{_where(path, table, key)}: expected {kind.name}, got {value!r}")
            out[key] = value
        elif extra is not None and key in extra:
            out[key] = extra[key](key, value)
        else:
            known = sorted(set(schema) | set(extra or {}))
            raise InvalidParameterError(f"{_where(path, table, key)}: unknown key (known keys: {', '.join(known)})")
    for key, (_, default) in schema.items():
        if key not in out and default is not None and default is not _ANY:
            out[key] = default
    return out


def _resolve(base_dir, value):
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))


def _existing(base_dir, value, where, hdu_spec=False):
    full = _resolve(base_dir, value)
    name = full
    if hdu_spec and full.endswith("]") and "[" in os.path.basename(full):
        name = full[: full.rindex("[")]
    if not os.path.isfile(name):
        raise InputFileError(f"{where}: {value}: no such file")
    return full


def _file_list(base_dir, value, where):
    words = [value] if isinstance(value, str) else list(value)
    files = []
    for word in words:
        full = _resolve(base_dir, word)
        if any(ch in word for ch in "*?["):
            found = sorted(glob.glob(full))
            if not found:
                raise InputFileError(f"{where}: {word}: the wildcard matches no file")
            files.extend(found)
        elif not os.path.isfile(full):
            raise InputFileError(f"{where}: {word}: no such file")
        else:
            files.append(full)
    if len(set(files)) != len(files):
        raise InvalidParameterError(f"{where}: a file is named twice")
    return files


def _drizzle_keys():
    """astrodrizzle's parameters (name -> default) a configuration may set, or None where it is missing."""
    try:
        from ..drizzle import PARAMETERS
    except ImportError:
        return None
    # the pipeline owns its outputs and its executor
    skip = {"overwrite", "num_cores", "clean", "runfile", "plot", "build"}
    return {name: default for name, default in PARAMETERS.items() if name not in skip}


def _check_like_default(default):
    """A checker for a pass-through key: the type of its API default where it has one."""
    def check(key, value, where):
        if isinstance(default, bool):
            ok = isinstance(value, bool)
            kind = "true or false"
        elif key.endswith("bits"):  # an integer or a bit-flag expression ('~4', '4,8')
            ok, kind = _is_int(value) or isinstance(value, str), "an integer or a bit-flag expression"
        elif isinstance(default, int) and not isinstance(default, bool):
            ok, kind = _is_number(value), "a number"
        elif isinstance(default, float):
            ok, kind = _is_number(value), "a number"
        elif isinstance(default, str):
            if isinstance(value, list) and value and all(_is_number(v) for v in value):
                value = " ".join(str(v) for v in value)  # combine_nsigma = [4, 3] for "4 3"
            ok, kind = isinstance(value, (str, int, float)) and not isinstance(value, bool), "a string"
        elif isinstance(default, tuple):
            ok, kind = isinstance(value, list), "a list"
        else:
            ok, kind = True, ""
        if not ok:
            raise InvalidParameterError(f"{where} {key}: expected {kind}, got {value!r}")
        return tuple(value) if isinstance(value, list) else value
    return check


def parse_config(data, *, base_dir=".", path=None):
    """Check a configuration given as a dictionary (the parsed TOML); see :func:`load_config`."""
    if not isinstance(data, dict):
        raise InvalidParameterError(f"{path or 'config'}: expected a table of tables")
    known_tables = set(_SCHEMA) | {"stages"}
    for table in data:
        if table not in known_tables:
            raise InvalidParameterError(
                f"{_where(path, table)}: unknown table (known tables: {', '.join(sorted(known_tables))})")
    base_dir = os.path.abspath(base_dir)
    top = _check_table(data, "pipeline", _SCHEMA["pipeline"], path)
    inputs = _check_table(data, "inputs", _SCHEMA["inputs"], path)
    if ("exposures" in inputs) == ("image" in inputs):
        raise InvalidParameterError(f"{_where(path, 'inputs')}: give one of 'exposures' (files to drizzle) or "
                                    "'image' (one image to measure)")
    resolved = {"exposures": None, "image": None, "psf": None, "truth": None, "targets": None, "ffis": None,
                "match_radius": float(inputs["match_radius"])}
    if inputs["match_radius"] <= 0:
        raise InvalidParameterError(f"{_where(path, 'inputs', 'match_radius')}: must be > 0, got "
                                    f"{inputs['match_radius']!r}")
    for key in ("exposures", "ffis"):
        if key in inputs:
            resolved[key] = _file_list(base_dir, inputs[key], _where(path, "inputs", key))
    for key in ("image", "psf", "truth", "targets"):
        if key in inputs:
            resolved[key] = _existing(base_dir, inputs[key], _where(path, "inputs", key), hdu_spec=key == "image")

    stages = data.get("stages", {})
    if not isinstance(stages, dict):
        raise InvalidParameterError(f"{_where(path, 'stages')}: expected a table, got {stages!r}")
    for key, value in stages.items():
        if key not in STAGES:
            raise InvalidParameterError(f"{_where(path, 'stages', key)}: unknown stage (stages: {', '.join(STAGES)})")
        if not isinstance(value, bool):
            raise InvalidParameterError(f"{_where(path, 'stages', key)}: expected true or false, got {value!r}")

    params, enabled = {}, {}
    for name in STAGES:
        extra = None
        if name == "drizzle":
            keys = _drizzle_keys()
            if keys is not None:
                where = _where(path, "drizzle")
                extra = {key: (lambda k, v, d=default: _check_like_default(d)(k, v, where)) for key, default in
                         keys.items()}
        values = _check_table(data, name, _SCHEMA[name], path, extra)
        on = values.pop("enabled", True)
        if name in stages:
            on = stages[name]
        enabled[name] = bool(on)
        params[name] = values

    for table, keys in (("calibrate", ("bias", "dark", "flat")), ("cube", ("targets",))):
        for key in keys:
            if key in params[table]:
                params[table][key] = _existing(base_dir, params[table][key], _where(path, table, key), hdu_spec=True)
    output_dir = _resolve(base_dir, top["output_dir"])
    config = PipelineConfig(path=path, base_dir=base_dir, output_dir=output_dir,
                            report_format=top["report_format"], inputs=resolved, params=params, enabled=enabled)
    _check_values(config, path)
    return config


def _positive(config, path, table, key, *, integer=False, allow_zero=False):
    value = config.params[table].get(key)
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            raise InvalidParameterError(f"{_where(path, table, key)}: must be {'>= 0' if allow_zero else '> 0'}, "
                                        f"got {value!r}")


def _check_values(config, path):
    """Ranges and what only the APIs themselves can tell: build their objects once, here."""
    p = config.params
    for table, key in (("find", "fwhm"), ("find", "nsigma"), ("find", "threshold"), ("find", "box_size"),
                       ("photometry", "fit_shape"), ("photometry", "aperture_radius"), ("photometry", "fwhm"),
                       ("photometry", "tile_size"), ("photometry", "gain"), ("photometry", "fitter_maxiters"), ("stamps", "n_stars"),
                       ("stamps", "width"), ("stamps", "normradii"), ("cutouts", "size"), ("cutouts", "png_size"),
                       ("cube", "size"), ("report", "zoom"), ("calibrate", "sigclip"), ("calibrate", "niter"),
                       ("calibrate", "gain")):
        _positive(config, path, table, key)
    _positive(config, path, "photometry", "overlap", allow_zero=True)
    _positive(config, path, "stamps", "isolation", allow_zero=True)
    fit_shape = p["photometry"]["fit_shape"]
    for v in fit_shape if isinstance(fit_shape, list) else [fit_shape]:
        if v % 2 == 0:
            raise InvalidParameterError(f"{_where(path, 'photometry', 'fit_shape')}: sides must be odd, got "
                                        f"{fit_shape!r}")
    name = p["cube"]["output"]
    if not name or os.path.basename(name) != name or not name.lower().endswith((".fits", ".fits.gz")):
        raise InvalidParameterError(f"{_where(path, 'cube', 'output')}: expected a file name ending in .fits, "
                                    f"without a directory, got {name!r}")
    if p["stamps"]["width"] % 2 == 0:
        raise InvalidParameterError(f"{_where(path, 'stamps', 'width')}: must be odd, got {p['stamps']['width']}")
    lo, hi = p["stamps"]["normradii"]
    if not lo < hi:
        raise InvalidParameterError(f"{_where(path, 'stamps', 'normradii')}: expected [inner, outer] with inner < "
                                    f"outer, got {p['stamps']['normradii']!r}")
    from ..stamp import NORMOPS, STACK_OPERATORS

    if p["stamps"]["normop"] not in NORMOPS:
        raise InvalidParameterError(f"{_where(path, 'stamps', 'normop')}: expected one of {', '.join(NORMOPS)}, "
                                    f"got {p['stamps']['normop']!r}")
    if p["stamps"]["operator"] not in STACK_OPERATORS:
        raise InvalidParameterError(f"{_where(path, 'stamps', 'operator')}: expected one of "
                                    f"{', '.join(STACK_OPERATORS)}, got {p['stamps']['operator']!r}")
    from ..cutout import STRETCHES

    if p["cutouts"]["stretch"] not in STRETCHES:
        raise InvalidParameterError(f"{_where(path, 'cutouts', 'stretch')}: expected one of {', '.join(STRETCHES)}, "
                                    f"got {p['cutouts']['stretch']!r}")
    # the star finder checks its own ranges: build one
    from ..detect import StarFinder

    try:
        StarFinder(1.0, **finder_options(p["find"]))
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{_where(path, 'find')}: {exc}") from None
    if config.inputs["exposures"] is not None and config.enabled["drizzle"] and _drizzle_keys() is None:
        raise InvalidParameterError(f"{_where(path, 'drizzle')}: this starpix has no starpix.drizzle.astrodrizzle; "
                                    "disable the stage ([stages] drizzle = false)")
    if config.inputs["exposures"] is not None and config.enabled["drizzle"]:
        from ..drizzle._pipeline import _check_params

        try:
            _check_params(dict(config.params["drizzle"]))
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{_where(path, 'drizzle')}: {exc}") from None
    if config.inputs["exposures"] is None and config.params["drizzle"]:
        raise InvalidParameterError(f"{_where(path, 'drizzle')}: drizzle parameters given but [inputs] has no "
                                    "exposures")


def finder_options(find):
    """The keyword arguments of :class:`starpix.detect.StarFinder` in a ``[find]`` table."""
    names = ("fwhm", "method", "sigma_radius", "exclude_border", "n_brightest", "peak_max", "min_separation",
             "sharpness_range", "roundness_range")
    out = {key: find[key] for key in names if key in find}
    for key in ("sharpness_range", "roundness_range"):
        if key in out:
            out[key] = tuple(out[key])
    return out
