"""The files of a results folder that the plan does not make (causalxai.stale)."""

from causalxai.stale import SHOWN, stale_files, stale_message, write_listing


def test_stale_files_are_those_no_planned_path_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ("results/d/zoo.nc", "results/d/explanations/ig.nc", "results/d/out_dir/a.txt",
                 "results/d/out_dir/sub/b.txt", "results/benchmarks/d/ig.tsv", "results/d/.zoo.nc.x1.tmp/zoo.nc.tmp"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    planned = ["results/d/zoo.nc", "./results/d/out_dir", "logs/d/zoo.log", "results/benchmarks/d/zoo.tsv"]
    assert stale_files("results", planned) == ["results/benchmarks/d/ig.tsv", "results/d/.zoo.nc.x1.tmp/zoo.nc.tmp",
                                               "results/d/explanations/ig.nc"]
    assert stale_files("missing", planned) == []


def test_the_listing_and_the_message(tmp_path):
    listing = tmp_path / "logs" / "stale_files.txt"
    stale = [f"results/d/figures/f_{i:02d}.png" for i in range(SHOWN + 5)]
    write_listing(stale, listing)
    assert listing.read_text().splitlines() == stale
    msg = stale_message(stale, "logs/stale_files.txt")
    assert msg.startswith(f"{SHOWN + 5} file(s) under results/ are made by no job of this run")
    assert stale[SHOWN - 1] in msg and stale[SHOWN] not in msg and "... and 5 more" in msg
    assert "xargs -d '\\n' rm -f -- < logs/stale_files.txt" in msg
    write_listing([], listing)  # nothing stale: no listing left to mislead
    assert not listing.exists() and stale_message([], listing) == ""
