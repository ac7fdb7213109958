"""`python -m cyclegan.translate` on what users bring: any architecture and size, one bad input among good ones,
colliding names, existing files, too little memory. Tiny models (ngf 8) throughout."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from cyclegan import CycleGAN
from cyclegan.translate import main as translate_main


def rand_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "resnet"
    CycleGAN(name_A="horse", name_B="zebra", ngf=8, n_blocks=3, ndf=8, with_discriminators=True).save_pretrained(path)
    return path


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_translate_cli(resnet_dir, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rand_image(50, 30).save(src / "a.jpg")
    rand_image(20, 40, seed=2).save(src / "sub" / "b.png")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    single = tmp_path / "c.png"
    rand_image(33, 17, seed=3).save(single)
    out = tmp_path / "out"
    rc = translate_main(["--model", str(resnet_dir), "--direction", "BtoA", str(src), str(single),
                         "--out", str(out), "--reconstructions", "--heatmaps", "--max-side", "40"])
    assert rc == 1                                                      # broken.png was skipped, the rest done
    assert "broken.png" in capsys.readouterr().err
    assert Image.open(out / "a.png").size == (40, 24)
    assert Image.open(out / "sub" / "b.png").size == (20, 40)
    for suffix in ("", "_rec", "_idt", "_cycle_error", "_identity_error", "_realness"):
        assert (out / f"c{suffix}.png").is_file(), suffix
    # G(x) alone needs one generator pass and writes only NAME.png
    rc = translate_main(["--model", str(resnet_dir), str(single), "--out", str(tmp_path / "o2")])
    assert rc == 0 and sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["c.png"]


# -- case 2b: the padding multiple comes from the architecture --------------------------------------------------
@pytest.mark.parametrize("depth", [6, 7])
def test_unet_model_translates_every_size_in_a_folder(tmp_path, depth):
    """A U-Net with n halvings needs sides that are multiples of 2**n: 64x64, 100x70 and 333x200 all come out at
    their own size (the old path padded to multiples of 4 and crashed with 'Sizes of tensors must match')."""
    torch.manual_seed(0)
    CycleGAN(netG="unet", ngf=8, unet_depth=depth).save_pretrained(tmp_path / "unet")
    src = tmp_path / "in"
    src.mkdir()
    sizes = [(64, 64), (100, 70), (333, 200)]
    for i, (w, h) in enumerate(sizes):
        rand_image(w, h, seed=i).save(src / f"{w}x{h}.png")
    rc = translate_main(["--model", str(tmp_path / "unet"), "--max-side", "0", str(src), "--out", str(tmp_path / "o"),
                         "--reconstructions", "--threads", "1"])
    assert rc == 0
    for w, h in sizes:
        for suffix in ("", "_rec", "_idt"):
            assert Image.open(tmp_path / "o" / f"{w}x{h}{suffix}.png").size == (w, h)


def test_padding_rules_come_from_the_architecture():
    from cyclegan.explain import canvas_rules, pad_canvas, run_padded
    torch.manual_seed(0)
    resnet = CycleGAN(ngf=8, n_blocks=3)
    unet = CycleGAN(netG="unet", ngf=8, unet_depth=6)
    assert canvas_rules(resnet)[0] == 4 and canvas_rules(unet)[0] == 64
    assert canvas_rules(unet)[1] >= 64
    x = torch.rand(1, 3, 70, 100) * 2 - 1
    assert pad_canvas(x, *canvas_rules(unet)).shape[-2:] == (128, 128)
    with torch.no_grad():
        y = run_padded(unet.G_AB, x, *canvas_rules(unet))
    assert y.shape == x.shape


# -- case 4: one bad input never stops a batch -------------------------------------------------------------------
class FailOnLarge(torch.nn.Module):
    """Wraps a generator and raises `error` on inputs larger than `limit` pixels, as an allocator would."""

    def __init__(self, net, error: BaseException, limit: int = 100 * 100):
        super().__init__()
        self.net, self.error, self.limit = net, error, limit

    def forward(self, x):
        if x.shape[-1] * x.shape[-2] > self.limit:
            raise self.error
        return self.net(x)


OOM_ERRORS = {
    "cpu-allocator": RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                                  "memory: you tried to allocate 768000000 bytes. Error code 12"),
    "cuda": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total)"),
    "python": MemoryError(),
}


@pytest.mark.parametrize("kind", list(OOM_ERRORS))
def test_out_of_memory_on_one_input_reports_it_and_goes_on(resnet_dir, tmp_path, monkeypatch, capsys, kind):
    model = CycleGAN.from_pretrained(resnet_dir)
    model.G_AB = FailOnLarge(model.G_AB, OOM_ERRORS[kind])
    monkeypatch.setattr("cyclegan.translate.load_model", lambda spec: model)
    rand_image(40, 30).save(tmp_path / "small.jpg")
    rand_image(400, 300, seed=1).save(tmp_path / "big.jpg")
    rand_image(30, 40, seed=2).save(tmp_path / "small2.jpg")
    rc = translate_main(["--model", "x", "--max-side", "0", *(str(tmp_path / n) for n in ("small.jpg", "big.jpg",
                         "small2.jpg")), "--out", str(tmp_path / "o"), "--backend", "torch"])  # the wrapper runs
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["small.png", "small2.png"]
    line = next(ln for ln in err.splitlines() if "big.jpg" in ln)
    assert "out of memory" in line and "400x300" in line and "--max-side" in line
    assert "Traceback" not in err
    assert "wrote 2 file(s) for 2 of 3 input(s)" in err and "1 failed" in err


def test_any_error_on_one_input_is_one_line_and_the_batch_goes_on(resnet_dir, tmp_path, monkeypatch, capsys):
    model = CycleGAN.from_pretrained(resnet_dir)
    model.G_AB = FailOnLarge(model.G_AB, ValueError("something odd\nsecond line"))
    monkeypatch.setattr("cyclegan.translate.load_model", lambda spec: model)
    rand_image(400, 300).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG not really")
    rand_image(30, 40).save(tmp_path / "c.png")
    rc = translate_main(["--model", "x", "--max-side", "0", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                         str(tmp_path / "c.png"), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"),
                         "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 1 and sorted(p.name for p in (tmp_path / "o").iterdir()) == ["c.png"]
    assert "Traceback" not in err and "second line" not in err
    assert any("a.png" in ln and "ValueError: something odd" in ln for ln in err.splitlines())
    assert any("b.png" in ln and "not an image" in ln for ln in err.splitlines())
    assert any("missing.png" in ln and "no such file" in ln for ln in err.splitlines())
    assert "3 failed" in err


def test_a_real_allocation_failure_under_ulimit(resnet_dir, tmp_path):
    """The issue's reproduction: a 4000x3000 photo between two small ones, with --max-side 0, in a process whose
    address space is capped (as `ulimit -v` does) a little above what the small images need. (`--tile 0`: the
    whole-image path; tiled inference, on by default above 4 MP, is tests/test_tiled.py's.)"""
    rand_image(64, 64).save(tmp_path / "small.jpg")
    big = (np.random.default_rng(1).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=70)
    rand_image(100, 70).save(tmp_path / "small2.jpg")
    script = (
        "import resource, sys\n"
        "from cyclegan.translate import main\n"
        "main(['--model', sys.argv[1], '--max-side', '0', '--threads', '1', sys.argv[2], '--out', sys.argv[3]])\n"
        "vm = int(open('/proc/self/status').read().split('VmPeak:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * 2**20, resource.RLIM_INFINITY))\n"
        "sys.exit(main(['--model', sys.argv[1], '--max-side', '0', '--tile', '0', '--threads', '1', *sys.argv[4:],"
        " '--out', sys.argv[3] + '2']))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", script, str(resnet_dir), str(tmp_path / "small.jpg"),
                        str(tmp_path / "o"), *(str(tmp_path / n) for n in ("small.jpg", "big.jpg", "small2.jpg"))],
                       capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["small.png", "small2.png"]
    assert "Traceback" not in r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "big.jpg" in ln)
    assert "out of memory" in line and "--max-side" in line


# -- case 5: never write over an input; colliding names; existing files ---------------------------------------------
def image_folder(folder, names: list[str]):
    """FOLDER holding a distinct 40x30 picture under each name (the format from the extension)."""
    folder.mkdir()
    for seed, name in enumerate(names, 1):
        rand_image(40, 30, seed=seed).save(folder / name)
    return folder


def test_colliding_inputs_get_distinct_outputs(resnet_dir, tmp_path, capsys):
    src = image_folder(tmp_path / "in", ["cat.jpg", "cat.png", "dog.png", "photo.webp"])
    rand_image(40, 30, seed=5).save(src / "photo.avif")
    rc = translate_main(["--model", str(resnet_dir), str(src), "--out", str(tmp_path / "out")])
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["cat_jpg.png", "cat_png.png", "dog.png", "photo_avif.png", "photo_webp.png"]
    assert "wrote 5 file(s) for 5 of 5 input(s)" in capsys.readouterr().err
    # different translations, not one file written twice under two names
    assert Image.open(tmp_path / "out" / "cat_jpg.png").tobytes() != Image.open(tmp_path / "out" / "cat_png.png").tobytes()


def test_same_names_from_two_folders_and_case_only_differences_are_numbered(resnet_dir, tmp_path, capsys):
    for folder, name, seed in (("a", "cat.png", 1), ("b", "cat.png", 2), ("a", "Dog.png", 3), ("a", "dog.png", 4)):
        (tmp_path / folder).mkdir(exist_ok=True)
        rand_image(40, 30, seed=seed).save(tmp_path / folder / name)
    files = [str(tmp_path / p) for p in ("a/cat.png", "b/cat.png", "a/Dog.png", "a/dog.png")]
    rc = translate_main(["--model", str(resnet_dir), *files, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0 and "note: 4 input(s) share an output name" in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["Dog_png-3.png", "cat_png-1.png", "cat_png-2.png", "dog_png-4.png"]
    assert len({(tmp_path / "out" / n).read_bytes() for n in names}) == 4


def test_panel_suffixes_cannot_collide_with_another_input(resnet_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rand_image(40, 30, seed=1).save(src / "cat.png")
    rand_image(40, 30, seed=2).save(src / "cat_rec.png")     # G(cat_rec) vs F(G(cat)): both "cat_rec.png"
    rc = translate_main(["--model", str(resnet_dir), str(src), "--out", str(tmp_path / "out"), "--reconstructions"])
    assert rc == 0
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_out_equal_to_the_input_folder_never_replaces_an_input(resnet_dir, tmp_path, capsys):
    src = image_folder(tmp_path / "in", ["cat.jpg", "cat.png", "dog.png"])
    before = snapshot(src)
    rc = translate_main(["--model", str(resnet_dir), str(src), "--out", str(src)])
    err = capsys.readouterr().err
    assert rc == 2 and snapshot(src) == before                      # refused before writing anything
    assert "dog.png" in err and "input" in err
    rc = translate_main(["--model", str(resnet_dir), str(src), "--out", str(src), "--overwrite"])
    assert rc == 2 and snapshot(src) == before                      # --overwrite never covers inputs


def test_existing_outputs_are_kept_unless_overwrite(resnet_dir, tmp_path, capsys):
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.png").write_bytes(b"someone's file")
    rc = translate_main(["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out", str(out)])
    assert rc == 2 and (out / "cat.png").read_bytes() == b"someone's file"
    assert "--overwrite" in capsys.readouterr().err
    rc = translate_main(["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out", str(out), "--overwrite"])
    assert rc == 0 and Image.open(out / "cat.png").size == (40, 30)


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(resnet_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rand_image(40, 30).save(src / "cat.jpg")
    assert translate_main(["--model", str(resnet_dir), str(src), "--out", str(src / "out")]) == 0
    # run again into the same folder: out/cat.png is an output, not a second input (which would be "out/cat.png"
    # -> out/out/cat.png, or a collision with cat.jpg)
    assert translate_main(["--model", str(resnet_dir), str(src), "--out", str(src / "out"), "--overwrite"]) == 0
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cat.jpg", "out", "out/cat.png"]


def test_the_same_file_named_twice_is_translated_once(resnet_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rand_image(40, 30).save(src / "cat.jpg")
    rc = translate_main(["--model", str(resnet_dir), str(src), str(src / "cat.jpg"), "--out", str(tmp_path / "o")])
    assert rc == 0 and [p.name for p in (tmp_path / "o").iterdir()] == ["cat.png"]
    assert "wrote 1 file(s) for 1 of 1 input(s)" in capsys.readouterr().err


# -- a mistyped model path ----------------------------------------------------------------------------------------
def test_a_mistyped_local_model_path_is_reported_at_once(resnet_dir, tmp_path, capsys, monkeypatch):
    """`models/defualt` looks like a Hub repo id `user/name` too: it must be reported as a missing folder, not
    after ~25 s of Hub retries as a connection problem (no request may leave this machine either way)."""
    import shutil
    shutil.copytree(resnet_dir, tmp_path / "models" / "default")     # like a checkout's models/default
    monkeypatch.chdir(tmp_path)
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    assert translate_main(["--model", "models/default", "cat.jpg", "--out", "ok"]) == 0
    capsys.readouterr()
    for typo in ("models/defualt", "./models/defualt", "models/defualt/", str(tmp_path / "models" / "dfault")):
        rc = translate_main(["--model", typo, str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2 and not (tmp_path / "o").exists(), typo
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert typo in err and ("no such" in err.lower() or "does not exist" in err.lower()
                                or "not found" in err.lower()), err


def test_no_model_named_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CYCLEGAN_MODEL", raising=False)
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    assert translate_main([str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err


def test_heatmaps_without_discriminators_say_what_is_left_out(resnet_dir, tmp_path, capsys):
    CycleGAN.from_pretrained(resnet_dir).without_discriminators().save_pretrained(tmp_path / "light")
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    rc = translate_main(["--model", str(tmp_path / "light"), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o"),
                         "--heatmaps"])
    assert rc == 0 and "no realness maps" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["cat.png", "cat_cycle_error.png",
                                                                  "cat_identity_error.png"]


def test_option_and_output_mistakes_are_one_line(resnet_dir, tmp_path, capsys):
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    (tmp_path / "file.png").write_bytes(b"x")
    rc = translate_main(["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "file.png")])
    assert rc == 2 and "is a file, not a folder" in capsys.readouterr().err
    rc = translate_main(["--model", str(resnet_dir), "--max-pixels", "100", str(tmp_path / "cat.jpg"),
                         "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "40x30 pixels is more than the limit" in err and "--max-pixels" in err
    for bad in (["--max-side", "-1"], ["--device", "gpu"]):
        with pytest.raises(SystemExit) as exit_:
            translate_main(["--model", str(resnet_dir), *bad, str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")])
        assert exit_.value.code == 2 and bad[0] in capsys.readouterr().err


# -- hostile inputs: one sentence each, nothing written where it should not be ------------------------------------
def stderr_messages(err: str) -> list[str]:
    """The message lines of stderr, without tqdm's progress bars (which redraw with carriage returns)."""
    lines = [line.split("\r")[-1].strip() for line in err.splitlines()]
    return [line for line in lines if line and "img/s" not in line and "?img" not in line]


def test_every_message_is_one_sentence_with_one_full_stop(resnet_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CYCLEGAN_MODEL", raising=False)
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    runs = [[str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")],                          # no model
            ["--model", str(tmp_path / "nosuch"), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")],
            ["--model", str(resnet_dir), str(tmp_path / "empty.png"), str(tmp_path / "text.png"),
             str(tmp_path / "gone.png"), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")],
            ["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")]]  # exists now
    seen = []
    for argv in runs:
        translate_main(argv)
        seen += stderr_messages(capsys.readouterr().err)
    assert len(seen) >= 8, seen
    for line in seen:
        if line.startswith(("A -> B", "horse -> zebra")):                   # the model line is a heading
            continue
        assert line.endswith(".") and not line.endswith("..") and not line.endswith("?."), line


def test_an_output_folder_that_cannot_be_created_is_refused_before_loading(resnet_dir, tmp_path, capsys,
                                                                            monkeypatch):
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    (tmp_path / "notes.txt").write_text("a user's file")
    monkeypatch.setattr("cyclegan.translate.load_model", lambda spec: pytest.fail("the model was loaded"))
    rc = translate_main(["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out",
                         str(tmp_path / "notes.txt" / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "notes.txt is a file, so the folder cannot be created there." in err, err
    monkeypatch.chdir(tmp_path)
    rc = translate_main(["--model", str(resnet_dir), "cat.jpg", "--out", ""])    # not "the current folder"
    assert rc == 2 and "--out is empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.jpg", "notes.txt"]
    real_access = os.access
    monkeypatch.setattr("cyclegan.cli.os.access",
                        lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    rc = translate_main(["--model", str(resnet_dir), "cat.jpg", "--out", str(tmp_path / "new")])
    assert rc == 2 and f"cannot write in {tmp_path}" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_names_the_output_not_the_input(resnet_dir, tmp_path, capsys):
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    (tmp_path / "o" / "cat.png").mkdir(parents=True)                    # a folder where the output file goes
    rc = translate_main(["--model", str(resnet_dir), str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o"),
                         "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 1 and f"could not write {tmp_path / 'o' / 'cat.png'}" in err, err
    assert "failed (IsADirectoryError" not in err


def test_ctrl_c_while_starting_up_is_one_line(resnet_dir, tmp_path):
    """Ctrl-C while torch is being imported or the model loads: one line and the signal's exit status, no
    traceback (the old entry point printed the KeyboardInterrupt's traceback from inside an import)."""
    import signal
    import time
    rand_image(40, 30).save(tmp_path / "cat.jpg")
    p = subprocess.Popen([sys.executable, "-m", "cyclegan.translate", "--model", str(resnet_dir),
                          str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "o")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in err, err
    assert p.returncode in (-signal.SIGINT, 130), p.returncode
    assert not (tmp_path / "o").exists()


def test_outputs_get_the_usual_file_permissions(resnet_dir, tmp_path):
    """Outputs are staged under a temporary name and renamed into place; the staging file used to keep mkstemp's
    private mode 0600, so a translated photo was unreadable to the user's group and to a web server."""
    rand_image(32, 32).save(tmp_path / "a.png")
    old = os.umask(0o022)
    try:
        assert translate_main(["--model", str(resnet_dir), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "o" / "a.png").stat().st_mode & 0o777 == 0o644


# -- the engine: ONNX Runtime by default on the CPU where it is installed -------------------------------------
def test_backends_give_the_same_pictures_and_the_export_is_cached(resnet_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    rand_image(70, 45, seed=4).save(tmp_path / "p.png")
    outs = {}
    for backend in ("torch", "onnxruntime", "auto"):
        out = tmp_path / backend
        assert translate_main(["--model", str(resnet_dir), str(tmp_path / "p.png"), "--out", str(out),
                               "--reconstructions", "--backend", backend, "--device", "cpu"]) == 0
        outs[backend] = {n: np.asarray(Image.open(out / f"p{n}.png"), dtype=int) for n in ("", "_rec", "_idt")}
        says = capsys.readouterr().err
        assert ("ONNX Runtime" in says) == (backend != "torch"), says      # the engine is named
    for backend in ("onnxruntime", "auto"):
        for n, img in outs[backend].items():
            assert np.abs(img - outs["torch"][n]).max() <= 1, (backend, n)   # rounding of ~1e-6 at most
    # one export per generator, reused by the second run
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2


def test_backend_onnxruntime_on_a_gpu_is_refused_in_one_line(resnet_dir, tmp_path, capsys):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to name")
    with pytest.raises(SystemExit):
        translate_main(["--model", str(resnet_dir), str(tmp_path), "--out", str(tmp_path / "o"),
                        "--backend", "onnxruntime", "--device", "cuda"])
    assert "runs on the CPU only" in capsys.readouterr().err
