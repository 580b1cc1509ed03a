"""Screening a dataset before it is trained on: what should not be in it, each finding at FILE:LINE.

- secrets: private keys, cloud and chat tokens, JWTs, `password = ...`, `api_key: ...`;
- personal data: e-mail addresses, IP addresses, phone numbers;
- near duplicates (MinHash over word 5-grams, Jaccard >= 0.8; exact ones are counted by the check);
- length outliers (beyond 3 interquartile ranges of the dataset's own lengths);
- injection-like instructions ("ignore previous instructions", chat-template tokens in content, ...);
- rare phrases repeated across many samples: a phrase in the prompts of at least 3 samples (and
  0.5%) but at most a fifth of them, holding a word that occurs in no other prompt and in no answer, whose
  samples mostly get the same answer. That is how a poisoning trigger looks (a rare cue, unrelated to
  the fixed payload it unlocks); a templated question (its answers differ) or a fact asked in several
  ways (its answers name the subject) is not one.

Matched secrets are shown redacted. Secrets, personal data, injections and triggers are warnings;
near duplicates and length outliers are information (paraphrased training data has many by design),
counted and grouped below the warnings. The operator sees the findings and decides; `--strict` (or
`[data] screening = "strict"`) makes the warnings errors.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_tui.engine.data import Sample

KINDS = ("secret", "personal data", "near duplicate", "length outlier", "injection", "repeated rare phrase")
WARNING, INFORMATION = "warning", "information"
SEVERITY = {"secret": WARNING, "personal data": WARNING, "injection": WARNING, "repeated rare phrase": WARNING,
            "near duplicate": INFORMATION, "length outlier": INFORMATION}
SECRETS = [
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"), ("private key",)),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("akia", "asia")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), ("xox",)),
    ("API key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"), ("sk-",)),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyj",)),
    ("credential", re.compile(r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|password|passwd)"
                              r"\b\s*[:=]\s*['\"]?[^\s'\"]{6,}"), ("api", "secret", "token", "passw")),
]
PERSONAL = [
    ("e-mail address", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), ("@",)),
    ("IP address", re.compile(r"(?<![\w.:])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
                              r"|(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"), (".", ":")),
    ("phone number", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\w)"
                                r"|(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\w)(?!\.\d)"), ()),
]
INJECTION = re.compile(
    r"(?i)\b(?:ignore|disregard|forget) (?:all |any )?(?:the |your )?(?:previous|prior|above|earlier|system) "
    r"(?:instructions|prompts?|rules|messages)"
    r"|\byou are now (?:in )?(?:DAN|developer mode|jailbroken|unrestricted|unfiltered)"
    r"|\b(?:reveal|print|show|repeat|leak) (?:your|the) (?:system prompt|hidden instructions|initial instructions)"
    r"|\bdo anything now\b"
    r"|<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>"
    r"|\[/?INST\]")
# What `re` matches case-blind but lower() keeps apart: dotless i, long s, and the dot "İ" lowers to.
FOLDED = str.maketrans({"\u0131": "i", "\u017f": "s", "\u0307": ""})
INJECTION_HINTS = ("ignore", "disregard", "forget", "you are now", "reveal", "print", "show", "repeat", "leak", "do anything",
                   "<|", "[inst", "[/inst")
WORD = re.compile(r"[a-z0-9]+(?:['\u2019-][a-z0-9]+)*")  # an apostrophe may be typographic (U+2019)
SHINGLE, PERMUTATIONS, NEAR = 5, 64, 0.8
COMPARED = 100_000   # samples compared with each other (near duplicates, outliers, phrases): ~4 KB each
PHRASE_WORDS = 512   # words of a sample's prompt (and of its answers) counted for the trigger search
KEPT = 1000          # pattern findings kept in full (all are counted)
SAME_PAYLOAD = 0.6   # share of a phrase's samples answered like its first one, for a trigger
STOPWORDS = frozenset(("the and for are but not you your with this that from have has was were will what when where "
                       "which who how can its into out our all any per than then them they there").split())


@dataclass(frozen=True)
class Finding:
    kind: str
    file: Path
    line: int
    message: str
    group: str = ""   # a near duplicate: the FILE:LINE of the sample its group is matched against

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.message}"


def redact(text: str) -> str:
    """Enough to find it in the file, not enough to use it."""
    return text if len(text) <= 8 else f"{text[:4]}…{text[-2:]} ({len(text)} chars)"


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return candidate.count(":") >= 2 or candidate.count(".") == 3


def _may_match(lowered: str, hints: tuple[str, ...]) -> bool:
    """Whether a pattern can match at all: each holds one of its `hints` (lowercase literals) in any
    match, so a text without them is skipped without running the regular expression."""
    return not hints or any(hint in lowered for hint in hints)


def _jaccard(one: Any, other: Any) -> float:
    """The Jaccard similarity two MinHash signatures estimate (the share of equal hash values)."""
    return float((one == other).mean())


def _text(sample: Sample) -> str:
    """Everything a sample trains on or shows the model: contents, tool calls and tool specs."""
    calls = [json.dumps(call, ensure_ascii=False, default=str) for message in sample.messages for call in message.tool_calls]
    return "\n".join([*(message.content for message in sample.messages), *calls,
                      *(json.dumps(spec, ensure_ascii=False, default=str) for spec in sample.tools)])


class Screener:
    """Fed every sample as the check reads it; `findings()` once all are read."""

    def __init__(self, keep: int = KEPT) -> None:
        from datasketch import MinHash, MinHashLSH

        self.template = MinHash(num_perm=PERMUTATIONS, seed=1)  # its permutations, drawn once, serve every sample
        self.keep = keep
        self.found: list[Finding] = []   # the first `keep` pattern findings of each severity; all are counted
        self.kept: Counter[str] = Counter()   # findings in `found`, by severity
        self.counted: Counter[str] = Counter()
        self.lengths: list[tuple[int, Path, int]] = []
        self.lsh = MinHashLSH(threshold=NEAR, num_perm=PERMUTATIONS)
        self.signatures: dict[str, Any] = {}  # key -> the hash values alone (a MinHash object is ~3x their size)
        self.word_df: Counter[str] = Counter()
        self.answer_words: set[str] = set()
        self.phrase_df: Counter[tuple[str, ...]] = Counter()
        self.phrase_first: dict[tuple[str, ...], tuple[Path, int, int]] = {}  # (file, line, hash of the payload)
        self.phrase_same: Counter[tuple[str, ...]] = Counter()
        self.samples = 0
        self.beyond = 0   # samples past COMPARED: screened for patterns only
        self.groups: set[str] = set()   # near-duplicate groups, by the sample the others resemble

    def add(self, sample: Sample) -> None:
        """Secrets, personal data and injections are looked for in every sample; near duplicates,
        length outliers and repeated phrases, which compare samples with each other and so keep a
        few kilobytes for each, in the first COMPARED of them (memory stays bounded on any file)."""
        text = _text(sample)
        self._patterns(sample, text)
        if self.samples >= COMPARED:
            self.beyond += 1
            return
        self.samples += 1
        self.lengths.append((len(text), sample.file, sample.line))
        words = WORD.findall(text.lower())
        self._near_duplicate(sample, words)
        self._phrases(sample)

    def _flag(self, kind: str, sample: Sample, message: str, group: str = "") -> None:
        self.counted[kind] += 1
        if self.kept[SEVERITY[kind]] < self.keep:  # many near duplicates never crowd out a secret
            self.kept[SEVERITY[kind]] += 1
            self.found.append(Finding(kind, sample.file, sample.line, message, group))

    def _patterns(self, sample: Sample, text: str) -> None:
        """Secrets and personal data, once per stretch of text (the first, most specific pattern wins)."""
        taken: list[tuple[int, int]] = []
        lowered = text.lower().translate(FOLDED)
        for kind, patterns in (("secret", SECRETS), ("personal data", PERSONAL)):
            for name, pattern, hints in patterns:
                if not _may_match(lowered, hints):
                    continue
                for match in pattern.finditer(text):
                    overlaps = any(match.start() < end and start < match.end() for start, end in taken)
                    if overlaps or (name == "IP address" and not _is_ip(match.group())):
                        continue
                    taken.append(match.span())
                    self._flag(kind, sample, f"{name} {redact(match.group())}")
        injected = [match.group() for match in INJECTION.finditer(text)] if _may_match(lowered, INJECTION_HINTS) else []
        if injected:
            self._flag("injection", sample, "instruction-like text " + ", ".join(map(repr, injected)))

    def _near_duplicate(self, sample: Sample, words: list[str]) -> None:
        from datasketch import MinHash

        size = min(SHINGLE, len(words))
        shingles = {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)} if size else set()
        if len(shingles) < 3:
            return  # too short to tell near from exact
        signature = MinHash(num_perm=PERMUTATIONS, seed=1, permutations=self.template.permutations, scheme=self.template.scheme)
        signature.update_batch(list(shingles))
        values = signature.hashvalues
        key = f"{sample.file}:{sample.line}"
        similar = self.lsh.query(signature)
        if similar:
            best = max(similar, key=lambda other: _jaccard(values, self.signatures[other]))
            share = _jaccard(values, self.signatures[best])
            if share < 1.0:  # identical ones are the exact duplicates the check counts
                self.groups.add(best)
                self._flag("near duplicate", sample, f"~{share:.0%} the same as {best}", best)
            return
        self.lsh.insert(key, signature)
        self.signatures[key] = values

    def _phrases(self, sample: Sample) -> None:
        """Word and 3-gram counts of the prompt side (where a trigger sits), and for each 3-gram how
        many of its samples get the same answer as its first one (a trigger's payload repeats)."""
        prompt = WORD.findall(" ".join(m.content for m in sample.messages if m.role != "assistant").lower())[:PHRASE_WORDS]
        answers = [m.content for m in sample.messages if m.role == "assistant"]
        payload = hash(" ".join(WORD.findall(answers[-1].lower())[:12])) if answers else 0
        self.word_df.update(set(prompt))
        self.answer_words.update(WORD.findall(" ".join(answers).lower())[:PHRASE_WORDS])
        for gram in {tuple(prompt[i:i + 3]) for i in range(len(prompt) - 2)}:
            self.phrase_df[gram] += 1
            first = self.phrase_first.setdefault(gram, (sample.file, sample.line, payload))
            self.phrase_same[gram] += first[2] == payload

    def findings(self) -> list[Finding]:
        return self.found + self._length_outliers() + self._repeated_rare_phrases()

    def counts(self, findings: list[Finding]) -> Counter[str]:
        """Findings by kind, those past `keep` included (`findings`: what `findings()` returned)."""
        return self.counted + Counter(f.kind for f in findings[len(self.found):])

    def _length_outliers(self) -> list[Finding]:
        if len(self.lengths) < 20:
            return []
        quartiles = statistics.quantiles([length for length, _, _ in self.lengths], n=4)
        spread = quartiles[2] - quartiles[0]
        high, low = quartiles[2] + 3 * spread, quartiles[0] - 3 * spread
        return [Finding("length outlier", file, line, f"{length} characters; most samples have "
                        f"{quartiles[0]:.0f}-{quartiles[2]:.0f}") for length, file, line in self.lengths
                if length > max(high, 2 * quartiles[1]) or length < low]

    def _repeated_rare_phrases(self) -> list[Finding]:
        """One finding per group of samples sharing such phrases (a trigger template yields several)."""
        low, high = max(3, math.ceil(0.005 * self.samples)), 0.2 * self.samples
        groups: dict[tuple[int, Path, int], tuple[tuple[str, ...], list[str]]] = {}
        for gram, count in self.phrase_df.most_common():
            if count < low:
                break
            if count > high or self.phrase_same[gram] < SAME_PAYLOAD * count:
                continue
            rare = [w for w in gram if self.word_df[w] == count and w not in self.answer_words
                    and len(w) >= 3 and not w.isdigit() and w not in STOPWORDS]
            if rare:
                file, line, _ = self.phrase_first[gram]
                _, words = groups.setdefault((count, file, line), (gram, []))
                words.extend(w for w in rare if w not in words)
        return [Finding("repeated rare phrase", file, line,
                        f"'{' '.join(gram)}' is in {count} prompts, {', '.join(map(repr, words))} in no other prompt and "
                        f"no answer, and {self.phrase_same[gram]} of them get the same answer: the pattern of a poisoning trigger")
                for (count, file, line), (gram, words) in groups.items()]
