"""cyclegan.card: what a model card tells its reader (install, load, where the model is)."""
import re

from cyclegan.card import card_metadata, model_card

CONFIG = {"name_A": "horse", "name_B": "zebra", "ngf": 8, "n_blocks": 3}
RUN = {"command": "python train/run.py --data d --out runs/toy", "step": 16, "epoch": 2, "data": "d",
       "final_losses": {"G_total": 1.5}, "args": {"lr": 2e-4, "n_epochs": 1, "n_epochs_decay": 1}}


def test_a_local_card_says_where_the_model_is_and_not_that_it_was_pushed(monkeypatch):
    monkeypatch.delenv("CYCLEGAN_SOURCE_URL", raising=False)
    card = model_card(CONFIG, local_path="runs/toy/model", run=RUN)
    assert "`runs/toy/model`" in card and 'CycleGAN.from_pretrained("runs/toy/model")' in card
    assert "python -m cyclegan.hub push runs/toy/model USER/REPO" in card
    assert not re.search(r"\bpushed\b|published to", card, re.I) and "has not been published" in card
    assert "[More Information Needed]" not in card and "PATH_OR_REPO_ID" not in card
    assert "pip install ." in card  # how to get the package
    card_metadata(card)


def test_a_hub_card_tells_how_to_install_the_package_from_its_source(monkeypatch):
    monkeypatch.delenv("CYCLEGAN_SOURCE_URL", raising=False)
    card = model_card(CONFIG, repo_id="u/h2z", app_url="https://huggingface.co/spaces/u/cyclegan")
    assert 'pip install "cyclegan @ git+https://huggingface.co/spaces/u/cyclegan"' in card
    assert 'CycleGAN.from_pretrained("u/h2z")' in card and "has not been published" not in card
    monkeypatch.setenv("CYCLEGAN_SOURCE_URL", "https://github.com/someone/cyclegan")
    card = model_card(CONFIG, repo_id="u/h2z")
    assert 'pip install "cyclegan @ git+https://github.com/someone/cyclegan"' in card
    # The install line comes before the code that needs it.
    assert card.index("pip install") < card.index("from cyclegan import CycleGAN")
