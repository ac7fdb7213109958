"""The model card (README.md of a Hub repo) of a CycleGAN, written from its training run or its conversion.

    from cyclegan.card import model_card
    text = model_card(config, repo_id="user/horse2zebra", run=json.load(open("RUN/run.json")))  # a Hub repo
    text = model_card(config, local_path="runs/h2z/model", run=...)                             # a local folder

Every card says how to install the `cyclegan` package (from `source_url` / $CYCLEGAN_SOURCE_URL, the app's
Space when `app_url` is one, or a clone of the project) and how to load the model; a local card says where the
model is and how to publish it, never that it was pushed.

The YAML metadata (library_name, license, pipeline_tag image-to-image, tags) comes from `CycleGAN`'s Hub
keywords, so the card and `push_to_hub` agree; `card_metadata(text)` parses it back.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

REFERENCE_REPO = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
SPACE_URL = re.compile(r"^https://huggingface\.co/spaces/[\w.-]+/[\w.-]+$")
PAPER = "https://arxiv.org/abs/1703.10593"
SAMPLES_FILE = "samples.png"
LOSSES_FILE = "losses.png"


def default_metadata() -> dict:
    """library_name, license, pipeline_tag and tags as declared on the `CycleGAN` class."""
    from .model import CycleGAN

    data = CycleGAN._hub_mixin_info.model_card_data.to_dict()
    return {"library_name": data.get("library_name", "cyclegan"), "license": data.get("license", "mit"),
            "pipeline_tag": data.get("pipeline_tag", "image-to-image"),
            "tags": sorted(set(data.get("tags") or []) | {"cyclegan", "image-to-image"})}


def card_metadata(text: str) -> dict:
    """The YAML front matter of a card as a dict (ValueError when it is missing or not a mapping)."""
    m = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not m:
        raise ValueError("the card has no YAML metadata block")
    meta = yaml.safe_load(m.group(1))
    if not isinstance(meta, dict):
        raise ValueError("the card's YAML metadata is not a mapping")
    return meta


def _hub_dataset_id(data: str | None) -> str | None:
    """A Hugging Face dataset id ("user/name") if `data` names one rather than a local folder."""
    if data and re.fullmatch(r"[\w.-]+/[\w.-]+", data) and not os.path.exists(data):
        return data
    return None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _arch(config: dict, n_params: int | None) -> str:
    if config.get("netG", "resnet") == "resnet":
        g = f"ResNet generator (ngf {config.get('ngf')}, {config.get('n_blocks')} residual blocks, instance norm)"
    else:
        g = f"U-Net generator (ngf {config.get('ngf')}, {config.get('unet_depth', config.get('n_blocks'))} halvings)"
    if config.get("use_dropout"):
        g += ", dropout 0.5 while training"
    return g + (f"; {n_params:,} parameters in this file" if n_params else "")


def install_lines(source_url: str | None = None, app_url: str | None = None) -> list[str]:
    """Markdown telling a reader how to install the `cyclegan` package.

    source_url: a pip-installable git URL of the project (default: $CYCLEGAN_SOURCE_URL); else the app's Space
    when `app_url` is a huggingface.co/spaces URL (a Space holds the whole project); else a clone of it.
    """
    source_url = source_url or os.environ.get("CYCLEGAN_SOURCE_URL")
    if not source_url and app_url and SPACE_URL.match(app_url.rstrip("/")):
        source_url = app_url.rstrip("/")
    if source_url:
        url = source_url if source_url.startswith("git+") else f"git+{source_url}"
        return ["It needs the `cyclegan` package (PyTorch, safetensors, huggingface_hub):", "", "```bash",
                f'pip install "cyclegan @ {url}"', "```", ""]
    return ["It needs the `cyclegan` package (PyTorch, safetensors, huggingface_hub): in a clone of the cyclegan "
            "project, `pip install .` (`pip install \".[app]\"` adds the app).", ""]


def model_card(config: dict, *, repo_id: str | None = None, run: dict | None = None,
               metrics: dict | None = None, n_params: int | None = None, samples: bool = False,
               losses_plot: bool = False, converted: dict | None = None, app_url: str | None = None,
               metadata: dict | None = None, local_path: str | Path | None = None,
               source_url: str | None = None) -> str:
    """The card's text (Markdown with YAML front matter).

    repo_id: the Hub repo the card is for; without it the card is a local one for the folder `local_path`
    (default "."): it says where the model is and how to publish it.
    config: the model's config.json. run: RUN/run.json (command, step, epoch, final_losses, data, args).
    metrics: name -> value, when measured. samples / losses_plot: whether samples.png / losses.png sit next to
    the card. converted: for weights converted from the reference implementation, {"files": {role: {"name",
    "sha256"}}, "notes": [...]}. app_url: where the app runs (default: $CYCLEGAN_APP_URL). source_url: see
    `install_lines`.
    """
    a, b = config.get("name_A", "A"), config.get("name_B", "B")
    where = repo_id or Path(local_path or ".").as_posix()
    meta = default_metadata()
    meta["tags"] = sorted(set(meta["tags"]) | {t for t in (a, b) if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", t)})
    args = (run or {}).get("args") or {}
    dataset = _hub_dataset_id(args.get("hf_dataset") or (run or {}).get("data"))
    if dataset:
        meta["datasets"] = [dataset]
    if converted is not None:
        meta.update(license="other", license_name="pytorch-cyclegan-and-pix2pix",
                    license_link=f"{REFERENCE_REPO}/blob/master/LICENSE")
    meta.update(metadata or {})
    app_url = app_url or os.environ.get("CYCLEGAN_APP_URL")

    L: list[str] = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    L += [f"# CycleGAN: {a} ↔ {b}", ""]
    L += [f"Unpaired image-to-image translation between **{a}** (domain A) and **{b}** (domain B), a CycleGAN "
          f"([Zhu et al. 2017]({PAPER})). `G_AB` turns {a} images into {b} images, `G_BA` turns {b} into {a}, "
          f"and `G_BA(G_AB(x))` brings an image back: the cycle.", ""]
    L += ["| | |", "| --- | --- |",
          f"| generators | {_arch(config, n_params)} |",
          "| discriminators | " + ("included (`D_A`, `D_B`: 70x70 PatchGAN)" if config.get("with_discriminators")
                                  else "not included (they belong to the training checkpoint)") + " |",
          "| files | `model.safetensors` (weights, safetensors only), `config.json` (architecture, domain names) |", ""]

    if repo_id is None:
        L += [f"This model is a local folder, `{where}`; it has not been published. To publish it on the Hugging "
              f"Face Hub: `python -m cyclegan.hub push {where} USER/REPO`.", ""]

    L += ["## Use it", ""] + install_lines(source_url, app_url) + ["```python", "from cyclegan import CycleGAN",
          f'model = CycleGAN.from_pretrained("{where}")',
          f"{_ident(b)} = model.G_AB({_ident(a)})   # NCHW float in [-1, 1]; model.G_BA goes back", "```", ""]
    if app_url:
        L += [f"Or open it in [the CycleGAN app]({app_url}): give it `{where}` and it shows {a} → {b}, {b} → {a} "
              "and the full cycle.", ""]
    else:
        L += [f"Or open it in the CycleGAN app, which shows {a} → {b}, {b} → {a} and the full cycle: "
              f"`CYCLEGAN_MODEL={where} python app.py` in the cyclegan project, or give `{where}` to a running app.",
              ""]

    if samples:
        L += ["## Samples", "", f"![samples]({SAMPLES_FILE})", "",
              f"Top row: a real {a}, `G_AB` of it ({b}), `G_BA(G_AB(·))` (back to {a}), `G_BA` of it (identity). "
              f"Bottom row: the same for a real {b}.", ""]

    if converted is not None:
        L += ["## Origin", "",
              f"Converted from the released generators of the reference implementation ({REFERENCE_REPO}) "
              f"with `python -m cyclegan.convert`; the outputs are those of the reference architecture with the "
              f"same weights.", ""]
        for role, f in (converted.get("files") or {}).items():
            L.append(f"- `{role}`: `{f['name']}` (sha256 `{f['sha256'][:16]}…`)")
        for note in converted.get("notes") or []:
            L.append(f"- {note}")
        L += ["", "Their license is the reference implementation's "
              f"([LICENSE]({REFERENCE_REPO}/blob/master/LICENSE)).", ""]

    if run:
        L += _training_section(run, args, config, dataset, losses_plot)

    L += ["## Metrics", ""]
    if metrics:
        L += ["| metric | value |", "| --- | --- |"] + [f"| {k} | {_fmt(v)} |" for k, v in _flat(metrics)] + [""]
    else:
        L += ["No metrics were measured for this model.", ""]

    L += ["## Limitations", "",
          f"A CycleGAN learns the look of the images it was trained on; {a} or {b} images unlike them (other "
          "sizes, lighting, content) translate less well, and the cycle can hide information in imperceptible "
          "signals rather than reconstruct it.", ""]
    return "\n".join(L)


def _flat(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested metric dicts ({"AtoB": {"PSNR": ...}}) as ("AtoB / PSNR", value) rows."""
    rows = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        rows += _flat(v, f"{name} / ") if isinstance(v, dict) else [(name, v)]
    return rows


def _ident(name: str) -> str:
    s = re.sub(r"\W+", "_", name.strip().lower()).strip("_")
    return s if s and not s[0].isdigit() else f"x_{s}"


def _training_section(run: dict, args: dict, config: dict, dataset: str | None, losses_plot: bool) -> list[str]:
    L = ["## Training", ""]
    commands = run.get("commands") or ([run["command"]] if run.get("command") else [])  # first, then resumes
    if commands:
        L += ["```bash", *commands, "```", ""]
    data = args.get("hf_dataset") or run.get("data") or args.get("data")
    if data:
        L.append(f"- data: [{dataset}](https://huggingface.co/datasets/{dataset})" if dataset
                 else f"- data: `{data}` (trainA/, trainB/)")
    if args.get("load_size"):
        L.append(f"- images: resized to {args['load_size']}, random {args.get('crop_size')} crops"
                 + ("" if args.get("no_flip") else ", random horizontal flips"))
    lam_a, lam_b = config.get("lambda_A", args.get("lambda_A")), config.get("lambda_B", args.get("lambda_B"))
    idt = config.get("lambda_identity", args.get("lambda_identity"))
    terms = [f"cycle A→B→A {_fmt(lam_a)}" + (" (off)" if args.get("no_cycle_A") else ""),
             f"cycle B→A→B {_fmt(lam_b)}" + (" (off)" if args.get("no_cycle_B") else ""),
             f"identity {_fmt(idt)} × the cycle weight" + (" (off)" if not idt else ""),
             "least-squares GAN 1" + (" (off)" if args.get("no_gan") else "")]
    L.append("- loss weights: " + ", ".join(terms))
    if args.get("lr") is not None:
        L.append(f"- optimiser: Adam lr {_fmt(args['lr'])}, betas ({_fmt(args.get('beta1'))}, {_fmt(args.get('beta2'))}), "
                 f"batch {args.get('batch_size')}, history pool {args.get('pool_size')}, "
                 f"{args.get('n_epochs')} + {args.get('n_epochs_decay')} epochs (constant, then linear decay)")
    L.append(f"- steps: {run.get('step')}; epochs completed: {run.get('epoch')}")
    L.append("")
    losses = run.get("final_losses") or {}
    if losses:
        L += ["Losses at the last step:", "", "| term | value |", "| --- | --- |"]
        L += [f"| {k} | {_fmt(v)} |" for k, v in losses.items()] + [""]
    if losses_plot:
        L += [f"![loss curves]({LOSSES_FILE})", ""]
    return L


def write_card(folder: str | Path, text: str) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
