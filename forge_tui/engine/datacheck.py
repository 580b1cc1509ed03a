"""`data check`: one streaming pass over a dataset -> problems, statistics, duplicates, split,
manifest and screening findings.

Memory grows with the number of samples by a few integers, a 16-byte digest and a MinHash signature
per sample, and with the distinct word 3-grams the screening counts, never with whole texts.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forge_tui.config import DataConfig
from forge_tui.engine.data import DEFAULT_READING, Problem, Reading, Sample, dataset_files, read_dataset, skipped_entries
from forge_tui.engine.fsutil import file_sha256
from forge_tui.engine.readers import GZIP_SUFFIX, data_suffix
from forge_tui.engine.sample import location
from forge_tui.engine.screening import COMPARED, KINDS, SEVERITY, WARNING, Finding, Screener
from forge_tui.engine.tokens import TemplateRefused, tool_refusal
from forge_tui.units import counted

DEFAULT_ERROR_CAP = 50
HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    bytes: int
    format: str | None
    samples: int
    container: str = ""   # how it is stored: jsonl, json, csv, jsonl.gz, parquet, arrow, ...


@dataclass(frozen=True)
class Manifest:
    """What a dataset was, byte for byte: recorded with every run and benchmark."""

    files: tuple[FileEntry, ...]
    samples: int
    format: str | None
    sha256: str
    columns: dict[str, str] = field(default_factory=dict)   # the column mapping the files were read with
    samples_sha256: str = ""   # of every sample's content in reading order: the same bytes read differently differ here

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LengthStats:
    min: int
    median: float
    p95: int
    max: int
    truncated: int
    max_seq_len: int
    histogram: tuple[tuple[int, int, int], ...]  # (low, high, count) per bin


@dataclass(frozen=True)
class Duplicate:
    where: str
    first: str


@dataclass
class CheckReport:
    """The result of `check_dataset`; `ok` is False when any problem was found."""

    paths: list[str]
    samples: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    duplicate_count: int = 0
    split: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})
    eval_fraction: float = 0.1
    lengths: LengthStats | None = None
    length_note: str | None = None
    skipped: list[str] = field(default_factory=list)      # folder entries that are not regular files
    manifest: Manifest | None = None
    findings: list[Finding] = field(default_factory=list)
    finding_count: int = 0
    not_compared: int = 0   # samples screened for patterns only (past the screening's comparison budget)
    finding_counts: dict[str, int] = field(default_factory=dict)   # by kind, all of them
    near_duplicate_groups: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "paths": self.paths,
            "samples": self.samples,
            "formats": self.formats,
            "problem_count": self.problem_count,
            "problems": [{"file": str(p.file), "line": p.line, "where": p.where, "message": p.message} for p in self.problems],
            "duplicate_count": self.duplicate_count,
            "duplicates": [asdict(d) for d in self.duplicates],
            "split": self.split,
            "eval_fraction": self.eval_fraction,
            "token_lengths": asdict(self.lengths) if self.lengths else None,
            "token_lengths_note": self.length_note,
            "skipped": self.skipped,
            "manifest": self.manifest.to_json() if self.manifest else None,
            "screening": {"count": self.finding_count, "warnings": self.warning_count, "by_kind": self.finding_kinds(),
                          "near_duplicate_groups": self.near_duplicate_groups, "not_compared": self.not_compared,
                          "findings": [{"file": str(f.file), "line": f.line, "where": location(f.file, f.line), "kind": f.kind,
                                        "severity": f.severity, "message": f.message} for f in self.findings]},
        }

    def finding_kinds(self, severity: str | None = None) -> dict[str, int]:
        """Findings by kind, all of them or those of one severity."""
        return {kind: self.finding_counts[kind] for kind in KINDS
                if self.finding_counts.get(kind) and severity in (None, SEVERITY[kind])}

    @property
    def warning_count(self) -> int:
        return sum(self.finding_kinds(WARNING).values())


class FirstSeen:
    """Where each distinct sample was first met, in about 100 bytes a sample whatever its size: the
    first 8 bytes of its digest (a collision among millions of samples is about 1e-7 likely) ->
    its file's number and its line, packed in one integer."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.numbers: dict[Path, int] = {}
        self.seen: dict[int, int] = {}

    def first(self, key: bytes, sample: Sample) -> str | None:
        """Where an identical sample was met before, or None (and this one is remembered)."""
        digest = int.from_bytes(key[:8], "big")
        found = self.seen.get(digest)
        if found is not None:
            return location(self.files[found >> 32], found & 0xFFFFFFFF)
        number = self.numbers.setdefault(sample.file, len(self.files))
        if number == len(self.files):
            self.files.append(sample.file)
        self.seen[digest] = number << 32 | sample.line
        return None


def sample_key(sample: Sample) -> bytes:
    """A digest of what a sample teaches (roles, contents, and the tool calls, tools and loss weights
    of those that have them), blind to metadata and location."""
    turns = [[m.role, m.content, *([[list(m.tool_calls), list(m.extra), m.train]] if m.tool_calls or m.extra or not m.train else [])]
             for m in sample.messages]
    payload = json.dumps([sample.fmt, turns, *([list(sample.tools)] if sample.tools else [])], ensure_ascii=False, sort_keys=True,
                         default=str)  # (a Parquet struct may hold dates)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).digest()


def in_eval_split(key: bytes, eval_fraction: float) -> bool:
    """Stable split by content: a sample stays on its side when the file is reordered or grows,
    and exact duplicates always land on the same side (no train/eval leakage)."""
    return int.from_bytes(key[:8], "big") < eval_fraction * 2**64


def container(path: Path) -> str:
    """How a data file is stored, in words: its data suffix, `.gz` included."""
    return data_suffix(path).lstrip(".") + (GZIP_SUFFIX if path.name.lower().endswith(GZIP_SUFFIX) else "")


def build_manifest(counts: dict[Path, tuple[str | None, int]], columns: dict[str, str] | None = None,
                   samples_sha256: str = "") -> Manifest:
    """Hash every file; the manifest digest covers names (not folders), hashes, formats and counts,
    and the column mapping when there is one (the same bytes read through another mapping are
    another dataset)."""
    entries = tuple(
        FileEntry(str(path), file_sha256(path), path.stat().st_size, fmt, n, container(path)) for path, (fmt, n) in counts.items()
    )
    formats = {e.format for e in entries if e.format}
    described: list[Any] = [[Path(e.path).name, e.sha256, e.format, e.samples] for e in entries]
    if columns:
        described.append(sorted(columns.items()))
    overall = hashlib.sha256(json.dumps(described).encode()).hexdigest()
    overall_format = formats.pop() if len(formats) == 1 else ("mixed" if formats else None)
    return Manifest(entries, sum(e.samples for e in entries), overall_format, overall, dict(columns or {}), samples_sha256)


def length_stats(lengths: Sequence[int], max_seq_len: int) -> LengthStats:
    ordered = sorted(lengths)
    low, high = ordered[0], ordered[-1]
    width = max(1, -(-(high - low + 1) // HISTOGRAM_BINS))
    bins = [0] * HISTOGRAM_BINS
    for value in ordered:
        bins[min((value - low) // width, HISTOGRAM_BINS - 1)] += 1
    histogram = tuple((low + i * width, low + (i + 1) * width - 1, c) for i, c in enumerate(bins) if low + i * width <= high)
    return LengthStats(
        min=low,
        median=statistics.median(ordered),
        p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        max=high,
        truncated=sum(1 for v in ordered if v > max_seq_len),
        max_seq_len=max_seq_len,
        histogram=histogram,
    )


def check_dataset(
    paths: Iterable[Path],
    *,
    eval_fraction: float = 0.1,
    max_seq_len: int = 1024,
    token_length: Callable[[Sample], int] | None = None,
    refusal: Callable[[Sample], str | None] | None = None,
    error_cap: int = DEFAULT_ERROR_CAP,
    reading: Reading = DEFAULT_READING,
    strict: bool = False,
) -> CheckReport:
    """Read every sample once; gather problems (capped, counted in full), statistics and screening
    findings (problems too when `strict`). `refusal` says why the model cannot train on a sample
    that reads well (tool use its chat template cannot render)."""
    paths = list(paths)
    report = CheckReport(paths=[str(p) for p in paths], eval_fraction=eval_fraction,
                         skipped=[f"{entry}: {why}" for p in paths for entry, why in skipped_entries(p)])
    screener = Screener(keep=error_cap)
    first_seen = FirstSeen()
    lengths = array("I")  # 4 bytes a sample
    content = hashlib.sha256()
    per_file: dict[Path, tuple[str | None, int]] = {f: (None, 0) for p in paths if p.exists() for f in dataset_files(p)}
    for read in read_dataset(paths, reading):
        item, length = _measured(read, refusal, token_length)
        if isinstance(item, Problem):
            report.problem_count += 1
            if len(report.problems) < error_cap or item.stops:
                report.problems.append(item)
            continue
        report.samples += 1
        report.formats[item.fmt] = report.formats.get(item.fmt, 0) + 1
        per_file[item.file] = (item.fmt, per_file.get(item.file, (None, 0))[1] + 1)
        key = sample_key(item)
        content.update(key)
        first = first_seen.first(key, item)
        if first is not None:
            report.duplicate_count += 1
            if len(report.duplicates) < error_cap:
                report.duplicates.append(Duplicate(item.where, first))
        else:
            screener.add(item)  # an exact duplicate is reported once, as a duplicate
        report.split["eval" if in_eval_split(key, eval_fraction) else "train"] += 1
        if length is not None:
            lengths.append(length)
    if lengths:
        report.lengths = length_stats(lengths, max_seq_len)
    if per_file:
        report.manifest = build_manifest(per_file, dict(reading.columns), content.hexdigest())
    found = screener.findings()
    report.finding_counts = dict(screener.counts(found))
    _screened(report, found, error_cap, strict)
    report.not_compared = screener.beyond
    report.near_duplicate_groups = len(screener.groups)
    return report


def _measured(item: Sample | Problem, refusal: Callable[[Sample], str | None] | None,
              token_length: Callable[[Sample], int] | None) -> tuple[Sample | Problem, int | None]:
    """A sample with its token length (when counted), or the problem the model's template has with it."""
    if isinstance(item, Problem):
        return item, None
    reason = refusal(item) if refusal is not None else None
    if reason:
        return Problem(item.file, item.line, reason), None
    try:
        return item, token_length(item) if token_length is not None else None
    except TemplateRefused as exc:
        return Problem(item.file, item.line, exc.reason), None


def check_configured(paths: Iterable[Path], data: DataConfig, *, strict: bool = False, model: Path | None = None,
                     token_length: Callable[[Sample], int] | None = None, max_seq_len: int | None = None) -> CheckReport:
    """`check_dataset` under the config's split, record size, column mapping and screening rule
    (`strict` makes the screening findings problems whatever the config says); with the `model`
    folder, samples its chat template cannot render are problems too."""
    return check_dataset(paths, eval_fraction=data.eval_fraction, max_seq_len=max_seq_len or data.max_seq_len,
                         token_length=token_length, refusal=tool_refusal(model) if model else None,
                         reading=Reading.of(data), strict=strict or data.screening == "strict")


def _screened(report: CheckReport, findings: list[Finding], cap: int, strict: bool) -> None:
    report.finding_count = sum(report.finding_counts.values())
    report.findings = sorted(findings, key=lambda finding: finding.severity != WARNING)[:cap]  # warnings first
    if strict:  # the warnings become errors; information stays information
        report.problem_count += report.warning_count
        room = max(0, cap - len(report.problems))
        warnings = [f for f in findings if f.severity == WARNING]
        report.problems.extend(Problem(f.file, f.line, f"{f.kind}: {f.message} (strict screening)") for f in warnings[:room])


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A human summary of a `CheckReport.to_json()` document: shared by the CLI and the TUI."""
    formats = ", ".join(f"{fmt} {count}" for fmt, count in report["formats"].items()) or "none"
    split = report["split"]
    lines = [
        f"samples     {report['samples']} ({formats})",
        f"split       {split['train']} train / {split['eval']} eval (eval_fraction {report['eval_fraction']}, by content hash)",
    ]
    lengths = report["token_lengths"]
    if lengths:
        lines.append(f"tokens      min {lengths['min']} / median {lengths['median']:g} / p95 {lengths['p95']} / max {lengths['max']}")
        lines.append(f"truncated   {lengths['truncated']} over max_seq_len {lengths['max_seq_len']}")
        widest = max(count for _, _, count in lengths["histogram"]) or 1
        for low, high, count in lengths["histogram"]:
            bar = "#" * max(1 if count else 0, round(24 * count / widest))
            lines.append(f"{low:>6}-{high:<6} {bar:<24} {count}")
    if report["token_lengths_note"]:
        lines.append(f"tokens      {report['token_lengths_note']}")
    lines.extend(f"skipped     {entry}" for entry in report.get("skipped", []))
    lines.append(f"duplicates  {report['duplicate_count']} exact")
    lines.extend(f"  {d['where']}: same as {d['first']}" for d in report["duplicates"])
    lines.extend(_screening_lines(report["screening"]))
    manifest = report["manifest"]
    if manifest:
        lines.extend(_file_lines(manifest))
        lines.append(f"manifest    sha256 {manifest['sha256'][:16]}... ({len(manifest['files'])} file(s), {manifest['samples']} samples)")
    return lines


def _file_lines(manifest: dict[str, Any], shown: int = 8) -> list[str]:
    """Each file with how it is stored and the format detected in it; the column mapping if any."""
    files = manifest["files"]
    lines = [f"{'files' if i == 0 else '':<12}{f['path']}: {f['format'] or 'no format detected'} ({f.get('container', '')}), "
             f"{f['samples']} samples" for i, f in enumerate(files[:shown])]
    if len(files) > shown:
        lines.append(f"{'':<12}... and {len(files) - shown} more files")
    columns = manifest.get("columns")
    if columns:
        lines.append("columns     " + ", ".join(f"{key} -> {target}" for key, target in columns.items()))
    return lines


def _screening_lines(screening: dict[str, Any]) -> list[str]:
    """The warnings, each at its line; below them the information, counted and grouped."""
    beyond = screening.get("not_compared", 0)
    limit = [(f"            near duplicates, outliers and triggers looked for in the first {COMPARED:,} samples "
             f"({beyond:,} more screened for secrets, personal data and injections only)")] if beyond else []
    if not screening["count"]:
        return ["screening   nothing found (secrets, personal data, near duplicates, outliers, injections, triggers)", *limit]
    warned = {kind: n for kind, n in screening["by_kind"].items() if SEVERITY[kind] == WARNING}
    if warned:
        lines = [f"screening   {counted(screening['warnings'], 'warning')}: " + ", ".join(f"{n} {kind}" for kind, n in warned.items())]
        shown = [f for f in screening["findings"] if f["severity"] == WARNING]
        lines.extend(f"  {f['file']}:{f['line']}: {f['kind']}: {f['message']}" for f in shown)
        if screening["warnings"] > len(shown):
            lines.append(f"  ... and {screening['warnings'] - len(shown)} more")
    else:
        lines = ["screening   no warnings (secrets, personal data, injections, triggers)"]
    return lines + _information_lines(screening) + limit


def _information_lines(screening: dict[str, Any]) -> list[str]:
    counts = screening["by_kind"]
    parts = []
    if counts.get("near duplicate"):
        groups = counted(screening["near_duplicate_groups"], "group")
        parts.append(f"{counted(counts['near duplicate'], 'near duplicate')} in {groups} of similar samples "
                     "(expected for paraphrased data)")
    if counts.get("length outlier"):
        parts.append(counted(counts["length outlier"], "length outlier"))
    if not parts:
        return []
    return [f"information {'; '.join(parts)}", "            each at its line: `forge-tui data check --json`"]
