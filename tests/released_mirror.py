#!/usr/bin/env python
"""Stand-ins for the reference implementation's released generators, and a local mirror that serves them.

The released `.pth` files (http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth) are out
of reach offline. This module writes files with their exact layout (names, shapes, the 2018 running
statistics; random weights) and serves a folder of them on 127.0.0.1 in the same layout, so that
`CYCLEGAN_PRETRAINED_URL=<mirror url>` makes `python -m cyclegan.convert --download` and `cyclegan.released`
work without the internet. The layout is written here from the reference's module indices alone, independently
of `cyclegan.networks`, so that conversion tests compare two implementations that share no code.

    python tests/released_mirror.py --write DIR horse2zebra zebra2horse    # stand-in .pth files (ngf 64, 9 blocks)
    python tests/released_mirror.py --write DIR --all --ngf 8 --n-blocks 3  # every released name, tiny
    python tests/released_mirror.py --serve DIR --port 8766 [--detach]      # then CYCLEGAN_PRETRAINED_URL=http://127.0.0.1:8766

Plain Python + torch; no pytest (the README's offline recipe runs it).
"""
from __future__ import annotations

import argparse
import http.server
import sys
import threading
from pathlib import Path

import torch


def reference_layout(ngf: int, n_blocks: int, dropout: bool = False) -> list[tuple[str, tuple, bool]]:
    """(name, shape, followed by an instance norm) of the reference ResnetGenerator's parameters, in order.
    nn.Sequential indices: 1 conv7, 4 and 7 down convs, 10.. blocks, then 10+n and 13+n transposed convs,
    17+n final conv. In a block: conv_block.1, and conv_block.5 (.6 with dropout)."""
    L = [("model.1", (ngf, 3, 7, 7), True), ("model.4", (2 * ngf, ngf, 3, 3), True),
         ("model.7", (4 * ngf, 2 * ngf, 3, 3), True)]
    for b in range(10, 10 + n_blocks):
        L += [(f"model.{b}.conv_block.1", (4 * ngf, 4 * ngf, 3, 3), True),
              (f"model.{b}.conv_block.{6 if dropout else 5}", (4 * ngf, 4 * ngf, 3, 3), True)]
    L += [(f"model.{10 + n_blocks}", (4 * ngf, 2 * ngf, 3, 3), True),   # ConvTranspose2d: (in, out, k, k)
          (f"model.{13 + n_blocks}", (2 * ngf, ngf, 3, 3), True), (f"model.{17 + n_blocks}", (3, ngf, 7, 7), False)]
    return L


def make_reference_state_dict(ngf: int, n_blocks: int, *, dropout: bool = False, stats_2018: bool = False,
                              prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the released layout with random weights (scaled so activations stay O(1)).
    stats_2018: add the instance norms' running statistics that the 2018 files carry; prefix: e.g. "module."."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape, normed in reference_layout(ngf, n_blocks, dropout):
        transposed = name in (f"model.{10 + n_blocks}", f"model.{13 + n_blocks}")  # weight (in, out, k, k)
        in_ch, out_ch = (shape[0], shape[1]) if transposed else (shape[1], shape[0])
        sd[f"{prefix}{name}.weight"] = torch.randn(shape, generator=g) / (in_ch * shape[2] * shape[3]) ** 0.5
        sd[f"{prefix}{name}.bias"] = torch.randn(out_ch, generator=g) * 0.1
        if stats_2018 and normed:  # the instance norm right after this conv (index + 1) had running stats
            head, idx = name.rsplit(".", 1)
            norm = f"{prefix}{head}.{int(idx) + 1}"
            sd[f"{norm}.running_mean"] = torch.zeros(out_ch)
            sd[f"{norm}.running_var"] = torch.ones(out_ch)
            sd[f"{norm}.num_batches_tracked"] = torch.tensor(0)
    return sd


def write_standins(folder: str | Path, names: list[str], ngf: int = 64, n_blocks: int = 9,
                   stats_2018: bool = True) -> list[Path]:
    """NAME.pth stand-ins in FOLDER (one seed per name, so the two directions differ); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / f"{name}.pth"
        torch.save(make_reference_state_dict(ngf, n_blocks, stats_2018=stats_2018, seed=i + 1), path)
        paths.append(path)
    return paths


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; records each request (method, path, status) on the server."""

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.command, self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, *args):
        pass


class Mirror:
    """A folder of .pth files served on 127.0.0.1 (`.url`, `.requests`, `.stop()`), like the released server."""

    def __init__(self, folder: str | Path, port: int = 0):
        handler = lambda *a, **kw: _Quiet(*a, directory=str(folder), **kw)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return self.httpd.requests

    def start(self) -> "Mirror":
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="released-mirror").start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Stand-in .pth files in the reference implementation's released layout, "
                                            "and a local mirror serving them (127.0.0.1).")
    p.add_argument("names", nargs="*", help="released names to write, e.g. horse2zebra zebra2horse")
    p.add_argument("--write", metavar="DIR", help="write stand-in NAME.pth files into DIR")
    p.add_argument("--all", action="store_true", help="write every released name")
    p.add_argument("--ngf", type=int, default=64, help="generator width (released files: 64)")
    p.add_argument("--n-blocks", type=int, default=9, help="residual blocks (released files: 9)")
    p.add_argument("--serve", metavar="DIR", help="serve DIR on 127.0.0.1 until interrupted")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--detach", action="store_true", help="with --serve: serve from a background process and return "
                                                         "once the port accepts connections (prints its pid)")
    p.add_argument("--pid-file", default=None, help="with --detach: also write the server's pid to this file")
    args = p.parse_args(argv)
    if not (args.write or args.serve):
        p.error("give --write DIR and/or --serve DIR")
    if args.write:
        from cyclegan.convert import RELEASED
        names = RELEASED if args.all else args.names
        if not names:
            p.error("name the files to write (e.g. horse2zebra zebra2horse), or --all")
        unknown = [n for n in names if n not in RELEASED]
        if unknown:
            p.error(f"not released names: {', '.join(unknown)} (released: {', '.join(RELEASED)})")
        for path in write_standins(args.write, list(names), args.ngf, args.n_blocks):
            print(f"wrote {path} (stand-in: released layout, random weights, ngf {args.ngf}, {args.n_blocks} blocks)")
    if args.serve:
        try:
            mirror = Mirror(args.serve, args.port)  # listening from here on
        except OSError as e:
            sys.exit(f"error: cannot listen on 127.0.0.1:{args.port} ({e.strerror}); choose another --port.")
        if args.detach:
            from hub_server import detach  # same folder
            pid = detach(args.pid_file)
            if pid:
                print(f"serving {args.serve} on {mirror.url} (CYCLEGAN_PRETRAINED_URL={mirror.url}), pid {pid}; stop it "
                      f"with: kill {pid}", flush=True)
                return 0
        print(f"serving {args.serve} on {mirror.url} (CYCLEGAN_PRETRAINED_URL={mirror.url}); Ctrl-C stops it",
              flush=True)
        try:
            mirror.httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            mirror.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    sys.exit(main())
