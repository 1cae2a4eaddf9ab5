"""Request category, drug and diagnoses: the classifier on kinds of treatment, the drug reader, the
enrichment stage on real letters (every value in the taxonomy, every evidence span verbatim)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PDFS, pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_extract import FlagCode, extract, load
from llm_extract import drugs as drugs_module
from llm_extract.classify import MAX_NAME_CHARS, classify_text, clean, enrich, rules
from llm_extract.diagnoses import find_diagnoses
from llm_extract.llm.views import ItemBrief, ItemDraft, ItemFill
from llm_extract.schema import Determination, Item, json_schema
from llm_extract.taxonomy import categories, is_valid, load_taxonomy

SHARED_TSV = Path("/work/shared/dwc-request-categories.tsv")


def test_taxonomy_is_the_published_list() -> None:
    pairs = load_taxonomy()
    assert len(pairs) == 70 and len(set(pairs)) == 70
    assert ("Pharmaceuticals", "Opioids") in pairs and ("Surgery", "Adjunct Surgical Services") in pairs
    assert categories()[0] == "DMEPOS" and "Transportation" in categories()
    assert is_valid("Rehabilitation", None) and is_valid(None, None)
    assert not is_valid("Surgery", "Opioids") and not is_valid(None, "Opioids")
    if SHARED_TSV.exists():  # the package copy is byte for byte the published file
        copy = Path(__file__).resolve().parent.parent / "llm_extract" / "data" / "dwc_request_categories.tsv"
        assert copy.read_bytes() == SHARED_TSV.read_bytes()


def test_schema_enumerates_the_taxonomy_and_rejects_pairs_outside_it() -> None:
    props = json_schema()["$defs"]["Item"]["properties"]
    assert set(props["category"]["anyOf"][0]["enum"]) == set(categories())
    with pytest.raises(ValueError, match="not a DWC category/subcategory pair"):
        Item(item="x", decision=None, category="Surgery", subcategory="Opioids")


def test_model_facing_views_leave_the_enriched_fields_out() -> None:
    for view in (ItemDraft, ItemFill, ItemBrief):
        assert not {"category", "subcategory", "drug"} & set(view.model_fields)


def test_every_rule_maps_into_the_taxonomy() -> None:
    assert all((r.category, r.subcategory) in set(load_taxonomy()) for r in rules())


# Kinds of treatment, written the way requests are written; none of these strings is a dev-set item.
KINDS = [
    ("Lumbar MR imaging with and without gadolinium", "Diagnostic Testing", "Imaging/Radiology"),
    ("Ultrasound of the left shoulder", "Diagnostic Testing", "Imaging/Radiology"),
    ("DEXA scan", "Diagnostic Testing", "Imaging/Radiology"),
    ("Nerve conduction velocity study, bilateral legs", "Diagnostic Testing", "EMG/NCV/NCS"),
    ("Quantitative urine drug screen", "Diagnostic Testing", "Lab & Pathology"),
    ("CBC and comprehensive metabolic panel", "Diagnostic Testing", "Lab & Pathology"),
    ("Polysomnogram", "Diagnostic Testing", "Other Diagnostic Tests"),
    ("Computerized range of motion and muscle testing", "Diagnostic Testing", "Other Diagnostic Tests"),
    ("Aquatic therapy 2x6", "Rehabilitation", "Physical Therapy/Occupational Therapy (PT/OT)"),
    ("Work hardening program 10 sessions", "Programs", "Programs"),
    ("Functional restoration program, 80 hours", "Programs", "Programs"),
    ("Osteopathic manipulative treatment x4", "Rehabilitation", "Chiropractic"),
    ("Dry needling, 6 visits", "Rehabilitation", "Acupuncture"),
    ("Massage therapy 1x6 weeks", "Rehabilitation", "Other Therapies"),
    ("Cold laser therapy 12 sessions", "Rehabilitation", "Other Therapies"),
    ("H-wave device, 30 day home trial", "DMEPOS", "Electrical Stimulation"),
    ("Interferential unit purchase", "DMEPOS", "Electrical Stimulation"),
    ("LSO brace", "DMEPOS", "Prosthetics/Orthotics"),
    ("Custom orthotic inserts, bilateral", "DMEPOS", "Prosthetics/Orthotics"),
    ("Front-wheeled walker", "DMEPOS", "DME"),
    ("Continuous passive motion machine rental 21 days", "DMEPOS", "DME"),
    ("TENS electrodes and batteries", "DMEPOS", "Supplies"),
    ("Cervical transforaminal epidural steroid injection C5-6", "Injection", "Injection"),
    ("Right shoulder subacromial corticosteroid injection", "Injection", "Injection"),
    ("Bilateral L4-L5 medial branch blocks", "Injection", "Facet Injection"),
    ("Radiofrequency ablation right L3-L5", "Injection", "Facet Injection"),
    ("Euflexxa injections x3 to the left knee", "Pharmaceuticals", "Viscosupplementation"),
    ("L4-S1 posterior lumbar interbody fusion", "Surgery", "Spine"),
    ("C5-6 anterior cervical discectomy and fusion", "Surgery", "Spine"),
    ("Left knee partial meniscectomy", "Surgery", "Arthroscopic Surgery"),
    ("Right total knee arthroplasty", "Surgery", "Non-arthroscopic Surgery"),
    ("Left cubital tunnel release", "Surgery", "Non-arthroscopic Surgery"),
    ("Lumbar laminectomy", "Surgery", "Spine"),
    ("Associated surgical service: Game Ready cold unit", "Surgery", "Adjunct Surgical Services"),
    ("Pre-operative labs", "Surgery", "Adjunct Surgical Services"),
    ("Inpatient stay x2 days", "Surgery", "Adjunct Surgical Services"),
    ("Orthopedic surgeon consultation for the right knee", "Surgery", "Surgical Consult"),
    ("Consultation with a spine surgeon", "Surgery", "Surgical Consult"),
    ("Pain management consultation", "Evaluation & Management", "Medical Specialties"),
    ("Follow-up visit with the primary treating physician", "Evaluation & Management", "Medical Specialties"),
    ("Dental evaluation for fractured teeth", "Evaluation & Management", "Dental Services"),
    ("Cognitive behavioral therapy, 6 sessions", "Psych Services", "Therapies"),
    ("Psychiatric evaluation", "Psych Services", "Evaluation & Management"),
    ("Home health aide 4 hours a day", "Home Health", "Home Health"),
    ("Medical transportation to appointments", "Transportation", "Transportation"),
    ("Hydromorphone 4mg #60", "Pharmaceuticals", "Opioids"),
    ("Percocet 10/325 #90", "Pharmaceuticals", "Opioids"),
    ("Nucynta ER 100mg #60", "Pharmaceuticals", "Opioids"),
    ("Zanaflex 4mg #60", "Pharmaceuticals", "Muscle Relaxant"),
    ("Soma 350mg #30", "Pharmaceuticals", "Muscle Relaxant"),
    ("Lyrica 75mg #60", "Pharmaceuticals", "Anti-epilepsy drugs"),
    ("Cymbalta 60mg #30", "Pharmaceuticals", "Antidepressant"),
    ("Trazodone 50mg #30", "Pharmaceuticals", "Antidepressant"),
    ("Ambien 10mg #30", "Pharmaceuticals", "Sedative-hypnotics"),
    ("Xanax 0.5mg #30", "Pharmaceuticals", "Benzodiazepines"),
    ("Nexium 40mg #30", "Pharmaceuticals", "Proton Pump Inhibitors"),
    ("Rabeprazole 20mg", "Pharmaceuticals", "Proton Pump Inhibitors"),
    ("Mobic 15mg #30", "Pharmaceuticals", "NSAID"),
    ("Relpax 40mg #10", "Pharmaceuticals", "Antimigraine Agent"),
    ("Colace 100mg #60", "Pharmaceuticals", "GI Agents"),
    ("Medrol dose pak", "Pharmaceuticals", "Adrenal Cortical Steroids"),
    ("Cialis 5mg #30", "Pharmaceuticals", "Impotence Agents"),
    ("Nuvigil 150mg #30", "Pharmaceuticals", "Stimulants"),
    ("Seroquel 50mg #30", "Pharmaceuticals", "Atypical Antipsychotic"),
    ("Keflex 500mg #28", "Pharmaceuticals", "Anti-infectives"),
    ("Theramine #90", "Pharmaceuticals", "Nutritional Products"),
    ("Terocin lotion 120ml", "Pharmaceuticals", "Topical Analgesics"),
    ("Pennsaid 2% solution", "Pharmaceuticals", "Topical Analgesics"),
    ("Gabapentin 6%/Ketoprofen 10%/Lidocaine 5% cream 180gm", "Pharmaceuticals", "Topical Compounds"),
    ("Tramadol 8% cream", "Pharmaceuticals", "Topical Compounds"),
    ("Butrans 10mcg/hr patch #4", "Pharmaceuticals", "Opioids"),
    ("Toradol 60mg IM injection", "Pharmaceuticals", "Injection"),
]


@pytest.mark.parametrize(("name", "category", "subcategory"), KINDS)
def test_kinds_of_treatment(name: str, category: str, subcategory: str) -> None:
    found = classify_text(name)
    assert (found.category, found.subcategory) == (category, subcategory), name
    assert found.span is not None and found.span[1] > found.span[0]


def test_nothing_fits_is_null_not_a_guess() -> None:
    found = classify_text("Letter of medical necessity to the employer")
    assert found.category is None and found.subcategory is None and found.problem


def test_an_unrecognised_drug_is_a_pharmaceutical_with_a_problem() -> None:
    found = classify_text("Zyxtrafen 50mg #30")
    assert found.category == "Pharmaceuticals" and found.subcategory is None
    assert found.drug_problem and found.problem


def _drug(name: str) -> dict:
    found = classify_text(name)
    d = found.drug
    assert d is not None, name
    span = lambda s: name[s[0] : s[1]] if s else None  # noqa: E731
    return {
        "name": d.name,
        "as_written": span(d.as_written),
        "strength": span(d.strength),
        "form": d.form,
        "quantity": d.quantity,
        "amount": span(d.amount),
        "refills": d.refills,
        "supply_days": d.supply_days,
        "ingredients": [(n, span(s)) for n, _, s in d.ingredients],
    }


def test_drug_fields() -> None:
    norco = _drug("Norco 10/325mg #120")
    assert norco["name"] == "acetaminophen/hydrocodone" and norco["as_written"] == "Norco"
    assert (norco["strength"], norco["quantity"]) == ("10/325mg", 120)
    assert _drug("Synapryn 10mg/ml oral suspension 500ml")["name"] == "glucosamine/tramadol"
    oxy = _drug("OxyContin 20mg tablets, QTY: 60, 30 day supply")
    assert (oxy["name"], oxy["form"], oxy["quantity"], oxy["supply_days"]) == ("oxycodone", "tablet", 60, 30)
    assert _drug("Ibuprofen 800mg x 90 with 2 refills")["quantity"] == 90
    assert _drug("Ibuprofen 800mg x 90 with 2 refills")["refills"] == 2
    assert _drug("Tylenol #3 #60")["quantity"] == 60
    assert _drug("Three months supply of Lexapro 10mg")["supply_days"] == 90
    patch = _drug("Lidoderm 5% patch #30")
    assert (patch["name"], patch["form"], patch["strength"]) == ("lidocaine", "patch", "5%")
    compound = _drug("Flurbiprofen 20%, Cyclobenzaprine 4%, Menthol 2% in cream base 240gm")
    assert compound["name"] == "cyclobenzaprine/flurbiprofen/menthol"
    assert compound["ingredients"] == [("flurbiprofen", "20%"), ("cyclobenzaprine", "4%"), ("menthol", "2%")]
    assert compound["amount"] == "240gm"
    assert _drug("Hydrocodone/APAP 5/325 mg #30")["name"] == "acetaminophen/hydrocodone"
    assert _drug("Ultram (tramadol) 50mg #60")["as_written"] == "Ultram"
    assert _drug("Naproxen sodium 550mg #60")["name"] == "naproxen"


def test_the_dictionary_resolves_brands_no_curated_list_names(monkeypatch, tmp_path) -> None:
    """Zanaflex and Protonix are in no curated list: the drug dictionary package names them."""
    lex = drugs_module.lexicon()
    assert "zanaflex" not in lex.brands and "protonix" not in lex.brands
    assert _drug("Protonix 40mg #30")["name"] == "pantoprazole"
    assert _drug("Zanaflex 4mg")["name"] == "tizanidine"


def test_the_curated_supplement_works_without_the_dictionary(monkeypatch) -> None:
    monkeypatch.setattr(drugs_module, "dictionary", lambda: {})
    drugs_module._lookup.cache_clear()
    try:
        assert classify_text("Norco 10/325 #60").subcategory == "Opioids"
        assert classify_text("Terocin patch").subcategory == "Topical Analgesics"
        unknown = classify_text("Zanaflex 4mg")  # only the dictionary knows Zanaflex: flagged, not guessed
        assert unknown.category == "Pharmaceuticals" and unknown.drug is None and unknown.drug_problem
    finally:
        drugs_module._lookup.cache_clear()


def test_the_dictionary_index_is_cached_per_package_version(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LLM_EXTRACT_CACHE_DIR", str(tmp_path))
    drugs_module.dictionary.cache_clear()
    try:
        index = drugs_module.dictionary()
        files = list((tmp_path / "drug-dictionary").glob("index-*.json"))
        assert index.get("flexeril") == "cyclobenzaprine" and len(files) == 1
        files[0].write_text("{not json", encoding="utf-8")  # a damaged index is rebuilt, never trusted
        drugs_module.dictionary.cache_clear()
        assert drugs_module.dictionary().get("flexeril") == "cyclobenzaprine"
    finally:
        drugs_module.dictionary.cache_clear()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_classify_never_crashes(text: str) -> None:
    found = classify_text(text)
    assert is_valid(found.category, found.subcategory)


def test_clean_maps_back_to_the_source() -> None:
    raw = "Cyclo\ufffe\r\nbenzaprine   7.5mg\r\n#60"
    text, origin = clean(raw)
    assert text == "Cyclobenzaprine 7.5mg #60" and len(origin) == len(text)
    assert raw[origin[text.index("#")]] == "#"


@pytest.fixture(scope="module")
def dev_results() -> list[tuple]:
    """A spread of the real letters, extracted (rules backend) with the enrichment stage."""
    return [(p, load(p), extract(p)) for p in PDFS[::6]]


def test_real_letters_every_item_classified_and_evidence_verbatim(dev_results) -> None:
    items = 0
    for path, letter, result in dev_results:
        for index, item in enumerate(result.items):
            items += 1
            assert item.category is not None, (path.name, item.item)
            assert is_valid(item.category, item.subcategory)
            assert f"items.{index}.category" in result.evidence
            if item.category == "Pharmaceuticals":
                assert item.drug is not None and item.drug.name, item.item
        for key, g in result.evidence.items():
            assert letter.text[g.start : g.end] == g.text, key
            assert g.page == letter.page_of(g.start)
        assert not [f for f in result.flags if f.code is FlagCode.CATEGORY_UNKNOWN], path.name
    assert items > 40


def test_enrich_is_idempotent_and_owns_its_fields(dev_results) -> None:
    _, letter, result = dev_results[0]
    again = enrich(result, letter)
    assert again.model_dump() == result.model_dump()
    emptied = result.model_copy(update={"items": [i.model_copy(update={"category": None}) for i in result.items]})
    assert enrich(emptied, letter).items == result.items


def test_an_item_not_in_the_letter_is_flagged_not_guessed() -> None:
    result = extract(pdf("CM16-0230651"))
    letter = load(pdf("CM16-0230651"))
    bogus = result.items[0].model_copy(update={"item": "Hyperbaric oxygen chamber x40", "heading": None})
    out = enrich(result.model_copy(update={"items": [bogus]}), letter)
    assert out.items[0].category is None
    assert any(f.code is FlagCode.CATEGORY_UNKNOWN and f.item == 0 for f in out.flags)


def test_a_huge_heading_is_read_only_up_to_the_bound() -> None:
    text = "MRI " + "x" * 50_000
    found = classify_text(clean(text[:MAX_NAME_CHARS])[0])
    assert found.category == "Diagnostic Testing"


def test_diagnoses_from_the_case_summary() -> None:
    result = extract(pdf("CM16-0237163"))
    letter = load(pdf("CM16-0237163"))
    names = [d.name for d in result.diagnoses]
    assert names == ["lumbar disc displacement", "lumbar radiculopathy", "lumbar sprain strain"]
    assert all(d.body_regions == ["lumbar spine"] for d in result.diagnoses)
    for index, _ in enumerate(result.diagnoses):
        g = result.evidence[f"diagnoses.{index}"]
        assert letter.text[g.start : g.end] == g.text


def test_diagnosis_lists_keep_icd_descriptors_whole() -> None:
    text = (
        "CLINICAL CASE SUMMARY\nThe injured worker is a 40 year old male. The current diagnoses are documented as "
        "strain of muscle, fascia and tendon at neck level, subsequent encounter; sprain of the right\r\nknee; "
        "and contusion of face, scalp and neck. Treatment has included medications.\n"
    )
    letter = load(text + "IMR ISSUES, DECISIONS AND RATIONALES\nMRI of the knee: Upheld\n", )
    result = Determination.model_validate({"source": {"sha256": "0", "page_count": 1, "characters": 1, "layout": "x", "backend": "rules"}})
    diagnoses, grounds = find_diagnoses(letter, result)
    assert [d.name for d in diagnoses] == [
        "strain of muscle, fascia and tendon at neck level, subsequent encounter",
        "sprain of the right knee",
        "contusion of face, scalp and neck",
    ]
    assert diagnoses[1].body_regions == ["right knee"]
    assert diagnoses[2].body_regions == ["face", "head", "cervical spine"]
    assert all(re.sub(r"\s+", " ", g.text) == d.name for g, d in zip(grounds, diagnoses))
