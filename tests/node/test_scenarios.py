"""The scenario loader (node/tools/scenarios.py; docs/design.md, "Scenarios"):
the five seed scenarios load, and each kind of bad folder is refused with
a message naming the file, the entry and the rule."""
from __future__ import annotations

import shutil

import pytest

from node.tools import scenarios
from node.tools.scenarios import ScenarioError

SEEDS = ("company-opening", "gallery-licence", "house-sale", "school-enrolment", "unemployment")


def test_the_five_seed_scenarios_load_and_share_one_network():
    assert scenarios.available() == list(SEEDS)
    loaded = scenarios.load_many(SEEDS)
    assert {s.name for s in loaded} == set(SEEDS)
    house = next(s for s in loaded if s.name == "house-sale")
    assert house.competent == {"power-company"} and house.providers == {"housing-registry"}
    assert house.issuers == {"housing-registry"} and "public-security" in house.departments
    assert [st.kind for st in house.steps] == ["authenticate", "certificate", "certificate", "case", "case", "audit"]
    assert house.service_item("electricity-transfer").payload["rule"] == "owner_is_subject"
    school = next(s for s in loaded if s.name == "school-enrolment")
    assert school.agreements == (scenarios.Agreement("housing-registry", "education", ("home-in-district",)),)
    assert school.agreement("housing-registry", "education", "home-in-district") == school.agreements[0]
    assert school.agreement("public-security", "education", "residency") is None


def test_an_agreements_requester_gets_a_node_even_without_a_service_item(school):
    toml = school / "scenario.toml"
    toml.write_text(toml.read_text() + '\n[[agreements]]\nprovider = "housing-registry"\nrequester = '
                    '"culture-tourism"\nitems = ["home-in-district"]\n')
    assert "culture-tourism" in scenarios.load(school).departments


@pytest.fixture
def folder(tmp_path):
    """A copy of house-sale to break."""
    target = tmp_path / "house-sale"
    shutil.copytree(scenarios.ROOT / "house-sale", target)
    return target


def refused(folder, old: str, new: str, file: str = "scenario.toml") -> str:
    path = folder / file
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        scenarios.load(folder)
    return str(info.value)


@pytest.mark.parametrize("old, new, message", [
    ('title = "', 'title = ', "not TOML"),
    ('title = "', 'colour = "blue"\ntitle = "', "unknown key 'colour'"),
    ('before = "4-6 documents and 5 working days at the power company"\n', "", "missing key 'before'"),
    ('id_number = "110108199204159076"', 'id_number = "110108199204159077"',
     "people[0]: id_number: ID number check character does not match"),
    ('name = "Sample Buyer"', 'name = "Wang Ying"', "people[0]: name must start with 'Sample '"),
    ('provider = "housing-registry"\nitem_id', 'provider = "housing-office"\nitem_id',
     "catalog_items[0] (property-ownership): provider 'housing-office' is not a department of the local network"),
    ('source = "property.csv"', 'source = "owners.csv"', "source owners.csv: no such file"),
    ('source = "property.csv"', 'source = "../property.csv"', "source must be a .csv file in the scenario folder"),
    ('columns = { ownership = "ownership", unit = "unit" }', 'columns = { ownership = "owner", unit = "unit" }',
     "source property.csv: no column 'owner' in its header"),
    ('columns = { ownership = "ownership", unit = "unit" }', 'columns = { ownership = "ownership" }',
     "columns must map each field (ownership, unit)"),
    ('rule = "owner_is_subject"', 'rule = "owner_is_subject && !account_arrears"', "service_items[0] (electricity-transfer): rule:"),
    ('catalog_item = "property-ownership"', 'catalog_item = "household"',
     "catalog_item 'household' is not one of this scenario's [[catalog_items]]"),
    ('name = "owner_is_subject"\nprovider = "housing-registry"', 'name = "owner_is_subject"\nprovider = "power-company"',
     "provider 'power-company': catalog item 'property-ownership' is housing-registry's"),
    ('field = "ownership"', 'field = "owner"', "inputs[0]"),
    ('holder = "buyer"', 'holder = "buyer2"', "holder 'buyer2' is not one of this scenario's [[people]]"),
    ('kind = "audit"', 'kind = "stroll"', "kind must be one of authenticate, certificate, case, audit"),
    ('window = "power-company/window-1"', 'window = "housing-registry/hall-2"',
     "cases of electricity-transfer are opened at power-company's windows"),
    ('expect = "approved"', 'expect = "maybe"', "expect must be one of approved, refused, review"),
    ('expect = "approved"', 'expect = "approved"\nreview = "approved"', 'review (the officer\'s outcome) goes with expect = "review"'),
    ('auto_approve = true', 'auto_approve = false', 'is decided by an officer: expect "review"'),
    ('notify = ["seller"]', 'notify = ["neighbour"]', "notify must list people of this scenario"),
])
def test_a_bad_scenario_is_refused_with_the_place_and_the_rule(folder, old, new, message):
    assert message in refused(folder, old, new)


@pytest.fixture
def school(tmp_path):
    """A copy of school-enrolment (an input asked under a standing agreement) to break."""
    target = tmp_path / "school-enrolment"
    shutil.copytree(scenarios.ROOT / "school-enrolment", target)
    return target


AGREEMENT = 'provider = "housing-registry"\nrequester = "education"\nitems = ["home-in-district"]'


@pytest.mark.parametrize("old, new, message", [
    (AGREEMENT, "", "agreements[0]: missing key 'provider'"),
    (AGREEMENT, AGREEMENT.replace('"education"', '"housing-registry"'),
     "agreements[0]: an agreement is between two departments"),
    (AGREEMENT, AGREEMENT.replace('"home-in-district"', '"residency"'),
     "agreements[0]: item 'residency' is not one of housing-registry's [[catalog_items]] here"),
    (AGREEMENT, AGREEMENT.replace('["home-in-district"]', '["home-in-district", "home-in-district"]'),
     "agreements[0]: items must be a non-empty list of distinct catalog item ids"),
    (AGREEMENT, AGREEMENT.replace('"education"', '"power-company"'),
     "service_items[0] (school-enrolment) inputs[1]: catalog item 'home-in-district' needs no consent, so "
     "education asks it under a standing agreement: add [[agreements]]"),
    ("consent_required = false", "consent_required = true",
     "agreements[0]: catalog item 'home-in-district' requires consent, so an agreement does not let anyone ask it"),
])
def test_a_bad_agreement_is_refused_with_the_place_and_the_rule(school, old, new, message):
    assert message in refused(school, old, new)


def test_bad_department_data_is_refused(folder):
    assert "line 3: id_number: ID number check character does not match" in refused(
        folder, "110108196811029085,", "110108196811029084,", "property.csv")


def test_department_data_holds_only_invented_names(folder):
    assert "line 2: full_name must start with 'Sample '" in refused(folder, "Sample Buyer,", "Wang Ying,",
                                                                   "property.csv")


def test_scenarios_on_one_network_need_distinct_ids(tmp_path, folder):
    other = tmp_path / "house-sale-again"
    shutil.copytree(folder, other)
    with pytest.raises(ScenarioError, match="catalog item 'property-ownership' is also scenario house-sale's"):
        scenarios.load_many([str(folder), str(other)])


def test_an_unknown_scenario_name_lists_the_scenarios():
    with pytest.raises(ScenarioError, match="no scenario 'house-swap'.*house-sale"):
        scenarios.load_many(["house-swap"])


def test_a_network_whose_catalog_item_differs_from_the_edited_scenario_is_refused(tmp_path):
    """An edited scenario played on a network that registered the item before fails at once, saying what
    to do, rather than deep inside a provider (node/tools/scenario_run.py)."""
    from node.tools import scenario_run

    school = scenarios.load(scenarios.ROOT / "school-enrolment")
    item = next(c for c in school.catalog_items if c.item_id == "home-in-district")
    net = scenario_run.Network(tmp_path, [], [school])
    registered = {**item.register_payload(), "department": item.provider, "status": "active"}
    scenario_run._check_registered(net, item, registered)  # the same item: nothing to say
    with pytest.raises(scenario_run.ScenarioFailed, match=r"differs from the scenario's \(consent_required\): "
                                                          r"`scripts/cluster down --dir"):
        scenario_run._check_registered(net, item, {**registered, "consent_required": True})
    with pytest.raises(scenario_run.ScenarioFailed, match=r"\(fields\)"):
        scenario_run._check_registered(net, item, {**registered, "fields": ["district", "street"]})
    with pytest.raises(scenario_run.ScenarioFailed, match=r"\(retired\)"):
        scenario_run._check_registered(net, item, {**registered, "status": "retired"})


def test_a_network_made_by_an_older_govchain_is_refused_with_what_to_do(tmp_path):
    from node.tools import scenario_run

    (tmp_path / scenario_run.MANIFEST).write_text('{"scenarios": ["house-sale"], "mqtt_port": 1883}')
    with pytest.raises(scenario_run.ScenarioFailed, match=f"made by an older govchain .*`scripts/cluster down --dir "
                                                          f"{tmp_path}`, remove it, and run again"):
        scenario_run.open_network(tmp_path)
