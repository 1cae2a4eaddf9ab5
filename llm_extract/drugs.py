"""Drugs named in an item: generic names, strength, form, quantity, supply, and the DWC drug class.

Names resolve in three steps, longest match first, each a dictionary lookup of word n-grams (so the
scan is linear in the item's length):

1. ``data/drug_brands.tsv``: a curated supplement of workers'-compensation brands, kits, compounds and
   medical foods that the drug dictionary lacks or resolves to a non-generic name (Norco, Synapryn,
   Terocin, Ketophene, Theramine, ...);
2. ``data/drug_classes.tsv``: generic names by DWC drug class (and USAN/INN stems for generics not
   listed: ``-prazole`` is a proton pump inhibitor, ``-triptan`` an antimigraine agent);
3. the drug dictionary of the ``drug-named-entity-recognition`` package (DrugBank, MeSH, MedlinePlus
   and NHS names: ~107,000 brand and generic variants). Reading its compressed data takes ~1.7 s, so
   a compact index of it is built once per package version and kept in the cache directory
   (:func:`dictionary`), loaded in ~50 ms afterwards, and only when an item names a word no curated
   list knows.

The class of a combination is the class of its ingredient listed first in ``drug_classes.tsv``
(hydrocodone/acetaminophen -> Opioids). Topical products are classed by form: a commercially made
topical (lidocaine, capsaicin, menthol, methyl salicylate, diclofenac) is a Topical Analgesic; a
pharmacy compound (several actives in a cream base, or an active that is not sold as a topical:
cyclobenzaprine, gabapentin, ketoprofen cream) is a Topical Compound; a transdermal opioid or hormone
keeps its systemic class.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from importlib.resources import files
from pathlib import Path

log = logging.getLogger("llm_extract.drugs")

DICTIONARY_PACKAGE = "drug-named-entity-recognition"
#: Longest brand/generic name looked up, in words ("tylenol with codeine", "medrol dose pak").
MAX_NAME_WORDS = 4
#: Dictionary matches shorter than this are too likely to be abbreviations or words ("ice", "pt").
MIN_DICTIONARY_CHARS = 4
#: Days in a month of supply ("three months coverage" -> 90 days).
DAYS_PER_MONTH = 30

TOPICAL_ANALGESICS = "Topical Analgesics"
TOPICAL_COMPOUNDS = "Topical Compounds"
NUTRITIONAL = "Nutritional Products"
OPIOIDS = "Opioids"
#: Actives sold as ready-made topicals; any other active in a topical means a pharmacy compound.
COMMERCIAL_TOPICALS = frozenset(
    {"lidocaine", "prilocaine", "benzocaine", "capsaicin", "menthol", "methyl salicylate", "camphor",
     "trolamine salicylate", "diclofenac", "histamine dihydrochloride"}
)
#: Classes that keep their class as a patch or gel (they act systemically).
SYSTEMIC_TRANSDERMAL = frozenset(
    {OPIOIDS, "Androgens & Anabolic Steroids", "Hormones", "Antihypertensive", "Antiemetic",
     "Dopamine agonists", "Stimulants", "Antidepressant"}
)

_FORMS: dict[str, str] = {
    "tablet": "tablet", "tablets": "tablet", "tab": "tablet", "tabs": "tablet", "caplet": "tablet",
    "capsule": "capsule", "capsules": "capsule", "cap": "capsule", "caps": "capsule",
    "cream": "cream", "creams": "cream", "gel": "gel", "ointment": "ointment", "lotion": "lotion",
    "patch": "patch", "patches": "patch", "transdermal": "patch", "film": "film", "solution": "solution",
    "suspension": "suspension", "syrup": "syrup", "elixir": "liquid", "liquid": "liquid",
    "injection": "injection", "injectable": "injection", "spray": "spray", "powder": "powder",
    "suppository": "suppository", "suppositories": "suppository", "lozenge": "lozenge", "drops": "drops",
    "foam": "foam", "balm": "balm", "liniment": "liniment", "roll-on": "roll-on", "kit": "kit",
    "inhaler": "inhaler", "vial": "vial", "pen": "pen", "pak": "tablet", "dosepak": "tablet",
}
TOPICAL_FORMS = frozenset(
    {"cream", "gel", "ointment", "lotion", "patch", "foam", "balm", "liniment", "roll-on", "spray"}
)
#: Forms a percentage strength does not make topical.
SYSTEMIC_FORMS = frozenset({"tablet", "capsule", "suspension", "syrup", "liquid", "injection", "inhaler", "vial", "pen"})
#: Salt and release words that follow a generic name and are not part of it.
SALTS = frozenset(
    [
        "hcl", "hydrochloride", "sodium", "potassium", "calcium", "magnesium", "citrate", "tartrate",
        "bitartrate", "maleate", "succinate", "besylate", "mesylate", "sulfate", "phosphate", "acetate",
        "hbr", "hydrobromide", "fumarate", "er", "xr", "sr", "cr", "dr", "ir", "la", "xl", "ds", "cd", "ec",
        "odt", "extended", "delayed", "immediate", "release"
    ]
)
#: Words the drug dictionary knows that, in an item name, are not drugs.
NOT_DRUGS = frozenset(
    [
        "ice", "heat", "cold", "hot", "water", "oxygen", "air", "unit", "units", "pad", "pads", "care",
        "support", "wrap", "base", "cream", "gel", "patch", "ointment", "lotion", "oral", "tablet",
        "tablets", "capsule", "capsules", "solution", "suspension", "plus", "forte", "extra", "strength",
        "regular", "mild", "day", "night", "pm", "am", "one", "two", "three", "four", "five", "six",
        "seven", "eight", "nine", "ten", "eleven", "twelve", "right", "left", "bilateral", "lumbar",
        "cervical", "thoracic", "spine", "back", "neck", "knee", "shoulder", "hip", "hand", "wrist", "foot",
        "ankle", "elbow", "head", "chest", "injection", "injections", "trial", "program", "session",
        "sessions", "therapy", "visit", "visits", "test", "tests", "testing", "lab", "labs", "panel",
        "screen", "drug", "drugs", "urine", "blood", "medication", "medications", "medical",
        "retrospective", "prospective", "request", "refill", "refills", "box", "bottle", "tube", "supply",
        "compound", "compounded", "topical", "transdermal", "apply", "daily", "twice", "times", "per",
        "month", "months", "week", "weeks", "dose", "doses", "quantity", "unknown", "unspecified", "post",
        "pre", "op", "rx", "generic", "brand", "kit", "gym", "bath", "shower", "toilet", "chair", "bed",
        "ultra", "cycle", "flex", "relief", "pain", "balance", "complete", "natural", "care", "sleep",
        "wake", "rest"
    ]
)

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['\-.][A-Za-z0-9]+)*")
_NUM = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+"
_UNIT = r"mg|mcg|\u00b5g|ug|g|gm|gms|grams?|ml|cc|%|percent|units?|iu|meq|oz|l"
#: A dose or concentration: "10/325mg", "75-0.2mg", "4%-27.5%-0.0325%", "25mg/ml", "5 %".
STRENGTH = re.compile(
    rf"(?<![\w.])(?:{_NUM})\s*(?:{_UNIT})?(?:\s*[/\-]\s*(?:{_NUM})\s*(?:{_UNIT})?)*\s*(?:{_UNIT})"
    rf"(?:\s*/\s*(?:{_NUM})?\s*(?:ml|g|gm|hr|h|actuation|spray))?(?![A-Za-z])",
    re.IGNORECASE,
)
#: A package size ("240g", "120 grams", "500ml"), not a dose: mass or volume units, no "/" or "%".
_AMOUNT = re.compile(rf"^(?:{_NUM})\s*(?:g|gm|gms|grams?|ml|cc|oz|l)$", re.IGNORECASE)
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "thirty": 30, "sixty": 60, "ninety": 90,
}
_COUNT = r"\d{1,5}|" + "|".join(_WORD_NUMBERS)
QUANTITY = re.compile(
    r"#\s*(\d{1,5})(?!\s*(?:\d|/|(?:g|gm|gms|grams?|ml|cc|oz)\b))|\b(?:qty|quantity)\s*[:=#]?\s*(\d{1,5})\b"
    r"|(?<![\w/])x\s*(\d{1,5})\b(?!\s*(?:a\s+)?(?:weeks?|days?|months?|per|times|visits?|sessions?|/))"
    r"|\b(\d{1,5})\s+(?:tablets|tabs|capsules|caps|patches|pills|count)\b",
    re.IGNORECASE,
)
REFILLS = re.compile(rf"\b({_COUNT})\s+refills?\b", re.IGNORECASE)
SUPPLY = re.compile(
    rf"\b({_COUNT})[\s\-]*(days?|weeks?|months?)(?:'s|s')?(?:\s+(?:supply|coverage|course))?\b"
    rf"|\b(?:supply|coverage)\s+(?:of|for)\s+({_COUNT})[\s\-]*(days?|weeks?|months?)\b",
    re.IGNORECASE,
)
COMPOUND_WORDS = re.compile(r"\bcompound(?:ed)?\b|\b(?:cream|gel|lotion|ointment)\s+base\b", re.IGNORECASE)


@dataclass(frozen=True)
class Product:
    """What a name resolves to."""

    ingredients: tuple[str, ...]
    kind: str = ""  # "", topical, compound, medical-food
    form: str | None = None
    source: str = "generic"  # supplement, generic, stem, dictionary


@dataclass(frozen=True)
class Mention:
    """A drug name found in a text: ``text[start:end]`` resolves to ``product``."""

    start: int
    end: int
    product: Product


@dataclass
class DrugReading:
    """Everything read about one item's drug, with the spans (into the scanned text) it came from."""

    name: str | None
    as_written: tuple[int, int]
    subcategory: str | None
    strength: tuple[int, int] | None = None
    form: str | None = None
    form_span: tuple[int, int] | None = None
    quantity: int | None = None
    quantity_span: tuple[int, int] | None = None
    amount: tuple[int, int] | None = None
    refills: int | None = None
    refills_span: tuple[int, int] | None = None
    supply_days: int | None = None
    supply_span: tuple[int, int] | None = None
    ingredients: list[tuple[str, tuple[int, int], tuple[int, int] | None]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Lexicons
# --------------------------------------------------------------------------------------------------


def _data(name: str) -> list[list[str]]:
    """Rows of a data TSV (comments and the header skipped)."""
    text = files("llm_extract").joinpath("data", name).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return rows[1:]


def _key(text: str) -> str:
    return " ".join(t.lower() for t in _TOKEN.findall(text))


@dataclass(frozen=True)
class Lexicon:
    brands: dict[str, Product]
    generics: dict[str, str]  # generic name -> class ("" for adjuvants)
    suffixes: tuple[tuple[str, str], ...]
    prefixes: tuple[tuple[str, str], ...]
    precedence: dict[str, int]


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    brands: dict[str, Product] = {}
    for row in _data("drug_brands.tsv"):
        names, ingredients, kind, form = (row + ["", "", "", ""])[:4]
        product = Product(tuple(ingredients.split("/")), kind.strip(), form.strip() or None, "supplement")
        for name in names.split("|"):
            brands[_key(name)] = product
    generics: dict[str, str] = {}
    suffixes: list[tuple[str, str]] = []
    prefixes: list[tuple[str, str]] = []
    precedence: dict[str, int] = {}
    for cls, kind, names in _data("drug_classes.tsv"):
        adjuvant = cls == "(adjuvant)"
        if not adjuvant:
            precedence.setdefault(cls, len(precedence))
        for name in names.split("|"):
            if kind == "stem":
                (prefixes if name.endswith("-") else suffixes).append((name.rstrip("-"), cls))
            else:
                generics.setdefault(_key(name), "" if adjuvant else cls)
    suffixes.sort(key=lambda s: -len(s[0]))
    return Lexicon(brands, generics, tuple(suffixes), tuple(prefixes), precedence)


@lru_cache(maxsize=8192)
def stem_class(name: str) -> str | None:
    """The class a generic name's USAN/INN stem implies (``-prazole`` -> Proton Pump Inhibitors)."""
    lex = lexicon()
    for stem, cls in lex.suffixes:
        if name.endswith(stem) and len(name) > len(stem) + 2:
            return cls
    for stem, cls in lex.prefixes:
        if name.startswith(stem) and len(name) > len(stem) + 3:
            return cls
    return None


def _dictionary_cache_file() -> Path:
    from .cache import default_directory  # the one rule for where llm_extract caches things

    try:
        version = metadata.version(DICTIONARY_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "missing"
    return default_directory() / "drug-dictionary" / f"index-{version}.json"


@lru_cache(maxsize=1)
def dictionary() -> dict[str, str]:
    """Variant name (lower case) -> canonical name, from the drug-named-entity-recognition package.

    Built from the package's data on first use and cached as JSON next to the result cache (one
    file per package version). Without the package (it is a core dependency, so only in a broken
    install) the curated lexicons still work and a warning says what is missing.
    """
    path = _dictionary_cache_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    try:
        from drug_named_entity_recognition import drugs_finder
    except ImportError:
        log.warning("%s is not installed: drug names resolve from the curated lists only", DICTIONARY_PACKAGE)
        return {}
    index = {variant: canonicals[0] for variant, canonicals in drugs_finder.drug_variant_to_canonical.items() if canonicals}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(index, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache directory costs speed, never correctness
        log.debug("drug dictionary index not cached: %s", exc)
    return index


# --------------------------------------------------------------------------------------------------
# Finding names
# --------------------------------------------------------------------------------------------------


def _split_canonical(canonical: str) -> tuple[tuple[str, ...], str | None]:
    """The dictionary's canonical name -> generic ingredients and a form ("lidocaine patch")."""
    text = re.sub(r"\s*\([^)]*\)", "", canonical.lower()).strip()
    form = None
    words = text.split()
    while len(words) > 1 and (words[-1] in _FORMS or words[-1] in ("oral", "topical", "extended-release")):
        form = _FORMS.get(words[-1], form)
        words.pop()
    text = " ".join(words)
    parts = [p.strip() for p in re.split(r"\s*/\s*|,\s*and\s+|\s+and\s+|,\s*", text) if p.strip()]
    return tuple(_strip_salts(p) for p in parts), form


def _strip_salts(name: str) -> str:
    words = name.split()
    while len(words) > 1 and words[-1] in SALTS:
        words.pop()
    return " ".join(words)


@lru_cache(maxsize=16384)
def _lookup(words: tuple[str, ...]) -> Product | None:
    """What the words name, if anything (cached: item names repeat a small vocabulary)."""
    key = " ".join(words)
    lex = lexicon()
    if key in lex.brands:
        return lex.brands[key]
    if key in lex.generics:
        return Product((key,), source="generic")
    if len(words) == 1:
        word = words[0]
        if word in NOT_DRUGS or word in SALTS or len(word) < MIN_DICTIONARY_CHARS or not word.isalpha():
            return None
        if stem_class(word) and word not in dictionary():
            return Product((word,), source="stem")
    elif any(w in NOT_DRUGS for w in (words[0], words[-1])):
        return None
    canonical = dictionary().get(key)
    if canonical is None:
        return None
    ingredients, form = _split_canonical(canonical)
    return Product(ingredients, "", form, "dictionary") if ingredients else None


def find(text: str) -> list[Mention]:
    """Drug names in ``text``, longest first, left to right (no overlaps).

    Tokens are words joined by hyphens or apostrophes; "/" separates ("Hydrocodone/APAP"). A
    hyphenated token that is not a name as a whole is tried part by part ("Cyclobenzaprine-Lidocaine").
    """
    tokens = [(m.start(), m.end(), m.group(0).lower()) for m in _TOKEN.finditer(text)]
    mentions: list[Mention] = []
    i = 0
    while i < len(tokens):
        found = None
        for n in range(min(MAX_NAME_WORDS, len(tokens) - i), 0, -1):
            if tokens[i][2][0].isdigit():
                break
            product = _lookup(tuple(t[2] for t in tokens[i : i + n]))
            if product is not None:
                found = (n, product)
                break
        if found is not None:
            n, product = found
            mentions.append(Mention(tokens[i][0], tokens[i + n - 1][1], product))
            i += n
            continue
        start, _, word = tokens[i]
        if "-" in word:
            offset = 0
            for part in word.split("-"):
                product = _lookup((part,)) if part and not part[0].isdigit() else None
                if product is not None:
                    mentions.append(Mention(start + offset, start + offset + len(part), product))
                offset += len(part) + 1
        i += 1
    return mentions


# --------------------------------------------------------------------------------------------------
# Reading an item
# --------------------------------------------------------------------------------------------------


def drug_class(ingredients: list[str], form: str | None, kind: str, compounded: bool) -> str | None:
    """The DWC drug class (a Pharmaceuticals subcategory) of a product."""
    if kind == "medical-food":
        return NUTRITIONAL
    lex = lexicon()
    classes = [lex.generics.get(i) if i in lex.generics else stem_class(i) for i in ingredients]
    ranked = sorted((lex.precedence[c], c) for c in classes if c)
    systemic = ranked[0][1] if ranked else None
    topical = kind in ("topical", "compound") or form in TOPICAL_FORMS
    transdermal = systemic in SYSTEMIC_TRANSDERMAL and len(ingredients) == 1 and (
        form == "patch" or systemic not in (OPIOIDS, "Antidepressant")
    )  # a fentanyl patch or a testosterone gel acts systemically; a tramadol cream is a compound
    if topical and not transdermal:
        if kind == "compound" or compounded:
            return TOPICAL_COMPOUNDS
        if kind == "topical":  # a commercially made product (Terocin, LidoPro, Salonpas)
            return TOPICAL_ANALGESICS
        actives = [i for i, c in zip(ingredients, classes) if c != ""]
        if any(i not in COMMERCIAL_TOPICALS for i in actives):
            return TOPICAL_COMPOUNDS  # cyclobenzaprine, gabapentin, ketoprofen ... only come compounded
        return TOPICAL_ANALGESICS
    if systemic is None and all(c == "" for c in classes) and classes:
        return None
    return systemic


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _WORD_NUMBERS[word.lower()]


def read(text: str, mentions: list[Mention]) -> DrugReading:
    """Read the drug fields of an item whose name is ``text`` (spans index ``text``)."""
    ingredients: list[str] = []
    named: list[Mention] = []  # mentions that add an ingredient ("Ultram (tramadol)" is one drug)
    for m in mentions:
        new = [name for name in m.product.ingredients if name not in ingredients]
        if new:
            ingredients.extend(new)
            named.append(m)
    first, last = named[0], named[-1]
    kind = next((m.product.kind for m in named if m.product.kind), "")
    reading = DrugReading(name=None, as_written=(first.start, last.end), subcategory=None)
    strengths = [(m.start(), m.end()) for m in STRENGTH.finditer(text, first.start)]
    doses = [s for s in strengths if not _AMOUNT.match(text[s[0] : s[1]].strip())]
    amounts = [s for s in strengths if s not in doses]
    if doses:
        reading.strength = doses[0]
    if amounts and (reading.strength is None or amounts[-1][0] > reading.strength[0]):
        reading.amount = amounts[-1]
    for m in _TOKEN.finditer(text):
        form = _FORMS.get(m.group(0).lower())
        if form:
            reading.form, reading.form_span = form, (m.start(), m.end())
            break
    if reading.form is None:
        reading.form = next((m.product.form for m in named if m.product.form), None)
    q = QUANTITY.search(text, last.end)  # after the name: "Tylenol #3 #60" is 60 of Tylenol #3
    if q:
        group = next(g for g in range(1, 5) if q.group(g))
        reading.quantity, reading.quantity_span = int(q.group(group)), q.span(group)
    r = REFILLS.search(text)
    if r:
        reading.refills, reading.refills_span = _number(r.group(1)), r.span()
    s = SUPPLY.search(text)
    if s:
        count, unit = (s.group(1), s.group(2)) if s.group(1) else (s.group(3), s.group(4))
        per = {"d": 1, "w": 7, "m": DAYS_PER_MONTH}[unit[0].lower()]
        reading.supply_days, reading.supply_span = _number(count) * per, s.span()
    written = [m for m in named if len(m.product.ingredients) == 1]
    if len(written) >= 2:  # a combination written out: each ingredient with its own strength
        for index, m in enumerate(written):
            stop = written[index + 1].start if index + 1 < len(written) else len(text)
            own = next((d for d in doses if m.end <= d[0] < stop), None)
            reading.ingredients.append((m.product.ingredients[0], (m.start, m.end), own))
    percent = any("%" in text[a:b] or "percent" in text[a:b].lower() for a, b in doses)
    compounded = bool(COMPOUND_WORDS.search(text)) or (
        not kind and len(written) > 2 and (percent or reading.form in TOPICAL_FORMS)
    )
    form_for_class = reading.form
    if percent and "%" in text[doses[0][0] : doses[0][1]] and form_for_class not in SYSTEMIC_FORMS:
        form_for_class = "cream"  # a percentage is a topical concentration ("Pennsaid 2% solution")
    reading.name = "/".join(sorted(set(ingredients))) if ingredients else None
    reading.subcategory = drug_class(ingredients, form_for_class, kind, compounded)
    return reading
