"""[[offers]] in node.toml (docs/design.md, "Push notices and offers")."""
from __future__ import annotations

import pytest

from node.core.config import OfferConfig

from .test_config import MINIMAL, error_of, load_text

AUTHN = '\n[[chains]]\nid = "authn"\ngenesis = "genesis/authn.json"\n'
MQTT = '\n[mqtt]\nhost = "127.0.0.1"\n'
OFFER = ('\n[[offers]]\nid = "unemployment-benefit"\nchain = "catalog"\ncontract = "cert"\nmethod = "issue"\n'
         'notice = "unemployment-benefit.apply"\n')


def test_offer_defaults_and_where(tmp_path) -> None:
    config = load_text(tmp_path, MINIMAL + AUTHN + MQTT + OFFER + 'tag_field = "holder_tag"\n'
                       'where = {type = "unemployment-registration", final = true}\n')
    assert config.offers == (OfferConfig(id="unemployment-benefit", chain="catalog", contract="cert", method="issue",
                                         notice="unemployment-benefit.apply", tag_field="holder_tag",
                                         where=(("final", True), ("type", "unemployment-registration"))),)
    assert load_text(tmp_path, MINIMAL + AUTHN + MQTT + OFFER).offers[0].tag_field == "tag"
    assert load_text(tmp_path, MINIMAL).offers == ()


@pytest.mark.parametrize("text, expected", [
    (MINIMAL + AUTHN + OFFER, "[[offers]] #1 offers are pushed over MQTT: add an [mqtt] table"),
    (MINIMAL + MQTT + OFFER, "[[offers]] #1 an offer goes to the app key the authn chain binds"),
    (MINIMAL + AUTHN + MQTT + OFFER.replace('"catalog"', '"cert"'),
     '[[offers]] #1 chain "cert" is not one of this node\'s [[chains]] (catalog, authn)'),
    (MINIMAL + AUTHN + MQTT + OFFER + OFFER, '[[offers]] #2 id "unemployment-benefit" appears twice'),
    (MINIMAL + AUTHN + MQTT + OFFER.replace('method = "issue"\n', ''), "[[offers]] #1 method is missing"),
    (MINIMAL + AUTHN + MQTT + OFFER + 'where = {type = 1.5}\n',
     "[[offers]] #1 where.type must be a field name equal to a string, integer or boolean (got 1.5)"),
    (MINIMAL + AUTHN + MQTT + OFFER + 'tag_field = "holder-tag"\n', "[[offers]] #1 tag_field must be a name"),
    (MINIMAL + AUTHN + MQTT + OFFER + 'text = "hello"\n', 'unknown key "text" in [[offers]] #1'),
])
def test_bad_offer(tmp_path, text, expected) -> None:
    assert expected in error_of(tmp_path, text)
