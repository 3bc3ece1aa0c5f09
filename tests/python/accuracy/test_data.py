"""Dataset formats, in process on real files: what the controller reads, what a worker gets, and the errors.

Each format is checked the same way: the controller's `open_dataset` (labels, ids), a worker's `reopen` from the
JSON spec the engine ships (its batches must equal the controller's), and bad input as a UserError that names
the file and the fix. The end-to-end runs (real CLI, xdist workers, S3, image) are in test_datasets_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlci.accuracy import data, sampling
from mlci.accuracy.formats.npz import NpzDataset
from mlci.artifacts import folder
from mlci.errors import UserError

_OPEN: list[data.Dataset] = []


def worker(ds: data.Dataset) -> data.Dataset:
    """What a pytest-xdist worker sees: the dataset re-opened from the JSON spec (the controller's dataset owns
    the run's scratch files, so it is kept open as the engine keeps it for the run)."""
    _OPEN.append(ds)
    return data.reopen(json.loads(json.dumps(ds.worker_spec())))


def test_npz_stored_members_are_memory_mapped_in_the_archive(tmp_path: Path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(10) % 3, id=np.arange(100, 110))
    ds = data.load(tmp_path / "a.npz")
    assert isinstance(ds, NpzDataset) and list(ds.workdir.iterdir()) == []  # nothing unpacked
    assert all(ref["path"] == str(tmp_path / "a.npz") for ref in ds.refs.values())
    assert isinstance(ds.array("x"), np.memmap)
    assert ds.ids.take([0, 9]) == ["100", "109"] and ds.labels.tolist() == (np.arange(10) % 3).tolist()
    w = worker(ds)
    np.testing.assert_array_equal(w.take([3, 1]), x[[3, 1]])
    assert "y" not in w._arrays  # a worker maps only what it reads: the inputs
    assert w.label_values([2]) == [2] and type(w.label_values([2])[0]) is int
    images = np.arange(10 * 8 * 8, dtype=np.uint8).reshape(10, 8, 8)
    np.savez(tmp_path / "i.npz", x=images, f=np.asfortranarray(x), y=np.zeros(10))
    w = worker(data.load(tmp_path / "i.npz", inputs=["x", "f"], batch_as="columns"))
    got = w.take([9, 0, 9])
    np.testing.assert_array_equal(got["x"], images[[9, 0, 9]])  # rows of any shape, repeats allowed
    np.testing.assert_array_equal(got["f"], x[[9, 0, 9]])  # a Fortran-order array: from the memory map
    got["x"][0, 0, 0] = 255  # predict may modify its batch: a copy, not the file
    assert w.take([9])["x"][0, 0, 0] == images[9, 0, 0]


def test_npz_compressed_members_are_unpacked_once_and_mapped(tmp_path: Path):
    x = np.random.default_rng(0).standard_normal((50, 3))
    np.savez_compressed(tmp_path / "c.npz", x=x, y=np.array(["a", "b"] * 25))
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        assert z.getinfo("x.npy").compress_type == zipfile.ZIP_DEFLATED
    ds = data.load(tmp_path / "c.npz")
    unpacked = sorted(p.name for p in ds.workdir.iterdir())
    assert len(unpacked) == 2  # x and y
    np.testing.assert_array_equal(worker(ds).take([49, 0]), x[[49, 0]])
    assert data.label_codes(ds.labels)[1] == ["a", "b"]
    workdir = ds.workdir
    ds.close()
    assert not workdir.exists()  # the run's scratch goes with the dataset


def test_npz_errors(tmp_path: Path):
    np.savez(tmp_path / "e.npz", x=np.zeros((2, 2)))
    with pytest.raises(UserError, match="array 'y' missing"):
        data.load(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(UserError, match="'x' has 3 rows but 'y' has 2"):
        data.load(tmp_path / "f.npz")
    np.savez(tmp_path / "g.npz", x=np.zeros((2, 2)), y=np.zeros(2), id=np.array([1, 1]))
    with pytest.raises(UserError, match="duplicate sample ids"):
        data.load(tmp_path / "g.npz")
    np.savez(tmp_path / "h.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(UserError, match="Python objects"):
        data.load(tmp_path / "h.npz")
    (tmp_path / "i.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read dataset"):
        data.load(tmp_path / "i.npz")


def test_csv_rows_are_read_by_offset_with_quoted_newlines_and_blank_lines(tmp_path: Path):
    (tmp_path / "b.csv").write_text('note,f1,f2,label,key\n"two\nlines",1,2.5,cat,a\n\n"x, y",3,4,dog,b\n'
                                    'plain,5,6e0,cat,c\n')
    ds = data.load(tmp_path / "b.csv", inputs="*", label="label", id_field="key", exclude=["note"])
    assert ds.input_names == ["f1", "f2"] and ds.labels.tolist() == ["cat", "dog", "cat"]
    assert list(ds.ids) == ["a", "b", "c"]
    w = worker(ds)
    assert w.take([1, 0]) == [{"f1": 3, "f2": 4}, {"f1": 1, "f2": 2.5}]
    assert w.label_values([1]) == ["dog"] and w.ids.take([2]) == ["c"]  # a worker reads just those rows
    (tmp_path / "bom.csv").write_bytes("\ufeffx,y\n1,0\n".encode())
    assert worker(data.load(tmp_path / "bom.csv")).take([0]) == [1]
    notes = worker(data.load(tmp_path / "b.csv", inputs=["note"], label="label"))
    assert notes.take([0, 1]) == ["two\nlines", "x, y"]
    arr = worker(data.load(tmp_path / "b.csv", inputs=["f1", "f2"], label="label", batch_as="array")).take([2, 0])
    assert arr.dtype == np.float64 and arr.tolist() == [[5.0, 6.0], [1.0, 2.5]]
    cols = worker(data.load(tmp_path / "b.csv", inputs=["f1", "f2"], label="label", batch_as="columns")).take([0, 2])
    assert cols == {"f1": [1, 5], "f2": [2.5, 6.0]}


def test_text_formats_report_the_line_and_the_fix(tmp_path: Path):
    cases = [  # (file, content, id column, expected message)
        ("d.jsonl", "", None, "is empty"), ("d.jsonl", '{"x": 1}\n', None, r"d.jsonl:1: field\(s\) y missing"),
        ("d.jsonl", '{"x": 1, "y": 2}\nnope\n', None, r"d.jsonl:2: not valid JSON"),
        ("d.jsonl", '{"x": 1, "y": ""}\n', None, r"d.jsonl:1: empty label"),
        ("d.csv", "x,y\n1,2\n3\n", None, r"d.csv:3: field\(s\) y missing"),
        ("d.csv", "x,z\n1,2\n", None, r"d.csv:1: field\(s\) y missing"),
        ("d.csv", "x,y\n1,\n", None, r"d.csv:2: empty label"),
        ("d.csv", "x,y,k\n1,2,a\n1,2,a\n", "k", "duplicate sample ids"),
    ]
    for name, text, ident, message in cases:
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=message):
            data.load(tmp_path / name, id_field=ident)
    (tmp_path / "m.csv").write_text("a,b,y\n1,2,0\n")
    with pytest.raises(UserError, match="mixes '\\*' with column names"):
        data.load(tmp_path / "m.csv", inputs=["*", "a"])
    with pytest.raises(UserError, match=r"input column\(s\) c missing") as err:
        data.load(tmp_path / "m.csv", inputs=["a", "c"])
    assert "columns present: a, b, y" in str(err.value)


def test_jsonl_keeps_json_values_and_files_next_to_the_dataset(tmp_path: Path):
    (tmp_path / "img.png").write_bytes(b"x")
    rows = [{"x": "img.png", "y": 1, "k": "a"}, {"x": {"t": "hi"}, "y": 0, "k": "b"}, {"x": [1, 2], "y": 1, "k": "c"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = data.load(tmp_path / "c.jsonl", id_field="k")
    assert worker(ds).take([0, 1, 2]) == [str(tmp_path / "img.png"), {"t": "hi"}, [1, 2]]
    assert worker(data.load(tmp_path / "c.jsonl", inputs="*", id_field="k")).records([1]) == [{"x": {"t": "hi"}}]


def tabular(tmp_path: Path, n: int = 500) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    cols = {"age": rng.integers(18, 90, n), "income": rng.normal(5e4, 1e4, n), "score": rng.random(n).astype(np.float32),
            "city": np.array(["paris", "oslo", "lima"])[rng.integers(0, 3, n)], "ts": np.arange(n)}
    y = (cols["score"] > 0.5).astype(np.int64)
    table = pa.table({**cols, "label": y, "uid": [f"u{i:04d}" for i in range(n)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=128)
    return path, {**cols, "label": y}


def test_parquet_reads_label_and_id_and_maps_only_the_selected_inputs(tmp_path: Path):
    path, cols = tabular(tmp_path)
    ds = data.load(path, inputs="*", label="label", id_field="uid", exclude=["ts", "city"], batch_as="array")
    assert ds.input_names == ["age", "income", "score"]
    rows = ds.worker_spec()["storage"]["rows"]  # numeric inputs: a file of row records, read by pread
    assert [f[0] for f in rows["descr"]] == ["age", "income", "score"]  # the workers' copy holds the inputs only
    assert ds.labels.tolist() == cols["label"].tolist() and ds.ids.take([0, 499]) == ["u0000", "u0499"]
    w = worker(ds)
    batch = w.take([499, 0, 250])
    expected = np.column_stack([cols["age"], cols["income"], cols["score"]])[[499, 0, 250]]
    np.testing.assert_allclose(batch, expected, rtol=1e-6)
    assert w.ids.take([3]) == ["u0003"] and w.label_values([3]) == [int(cols["label"][3])]
    strings = data.load(path, inputs=["city", "age"], label="label")
    assert pa.ipc.open_file(pa.memory_map(strings.worker_spec()["storage"]["ipc"])).schema.names == ["city", "age"]
    records = worker(strings).take([1, 2])
    assert records == [{"city": str(cols["city"][i]), "age": int(cols["age"][i])} for i in (1, 2)]
    columns = worker(data.load(path, inputs=["age", "city"], label="label", batch_as="columns")).take([5, 6])
    assert columns["age"].tolist() == cols["age"][[5, 6]].tolist() and columns["city"] == cols["city"][[5, 6]].tolist()
    with pytest.raises(UserError, match="'city' is not numeric"):
        worker(data.load(path, inputs=["age", "city"], label="label", batch_as="array")).take([0])


def test_parquet_vectors_strings_and_errors(tmp_path: Path):
    emb = np.arange(12, dtype=np.float64).reshape(4, 3)
    pq.write_table(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3),
                             "text": ["a", "b", "c", "d"], "y": ["neg", "pos", "neg", None]}), tmp_path / "v.parquet")
    with pytest.raises(UserError, match="row 3 has an empty label"):
        data.load(tmp_path / "v.parquet", inputs="emb")
    pq.write_table(pa.table({"n": [1.0, None, 3.0], "y": [0, 1, 0]}), tmp_path / "null.parquet")
    nullable = data.load(tmp_path / "null.parquet", inputs="n")
    assert "ipc" in nullable.worker_spec()["storage"]  # numpy has no nulls: Arrow keeps them
    assert worker(nullable).take([1, 2]) == [None, 3.0]
    pq.write_table(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3),
                             "text": ["a", "b", "c", "d"], "y": ["neg", "pos", "neg", "pos"], "k": [1, 2, 2, 3]}),
                   tmp_path / "v.parquet")
    ds = data.load(tmp_path / "v.parquet", inputs="emb")
    np.testing.assert_array_equal(worker(ds).take([2, 0]), emb[[2, 0]])  # a vector column: a 2-D array
    assert ds.labels.tolist() == ["neg", "pos", "neg", "pos"]
    assert worker(data.load(tmp_path / "v.parquet", inputs="text")).take([3, 1]) == ["d", "b"]
    with pytest.raises(UserError, match="duplicate or empty sample ids"):
        data.load(tmp_path / "v.parquet", inputs="emb", id_field="k")
    with pytest.raises(UserError, match=r"column\(s\) label missing"):
        data.load(tmp_path / "v.parquet", inputs="emb", label="label")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(UserError, match="is it a valid Parquet file"):
        data.load(tmp_path / "bad.parquet")


def test_parquet_without_pyarrow_says_how_to_get_it(tmp_path: Path):
    path, _ = tabular(tmp_path, 10)
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from mlci.cli import main\n"
            f"sys.exit(main(['accuracy', 'run', '--suite', 's', '-c', {str(tmp_path / 'ml-ci.yaml')!r}]))")
    (tmp_path / "ml-ci.yaml").write_text(json.dumps({
        "service": "t", "artifacts": {"data": {"t": {"uri": "t.parquet", "label": "label"}}},
        "accuracy": {"predict": "m:p", "suites": {"s": {"dataset": "t", "gates": [{"metric": "accuracy", "min": 0.5}]}}}}))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "needs pyarrow" in proc.stderr and "requirements.txt" in proc.stderr and "Traceback" not in proc.stderr


def image_folder(tmp_path: Path, n: int = 30) -> Path:
    """A folder of small binary 'images' (PGM) in sub-folders, with a labels table naming them."""
    root = tmp_path / "shapes"
    rows = ["path,label,id"]
    for i in range(n):
        rel = f"{'even' if i % 2 == 0 else 'odd'}/{i:03d}.pgm"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"P5 2 2 255\n" + bytes([i, i, i, i]))
        rows.append(f"{rel},{i % 3},s{i}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_local_folder_with_a_labels_table(tmp_path: Path):
    root = image_folder(tmp_path)
    files = folder.scan(root)
    assert [f.path for f in files][:2] == ["even/000.pgm", "even/002.pgm"] and len(files) == 31
    ds = data.open_dataset(root, data.DataSpec(files=("path",), label="label", id="id"),
                           folder={"files": files})
    assert ds.format == "folder" and ds.input_names == ["path"] and list(ds.ids)[:2] == ["s0", "s1"]
    w = worker(ds)
    assert w.take([3, 4]) == [str(root / "odd/003.pgm"), str(root / "even/004.pgm")]
    raw = worker(data.open_dataset(root, data.DataSpec(files=("path",), label="label", read="bytes"),
                                   folder={"files": files})).take([5])
    assert raw == [b"P5 2 2 255\n" + bytes([5] * 4)]
    assert w.label_values([4, 5]) == [1, 2]
    # the manifest digest pins every byte: any change to any file changes it
    (root / "odd/005.pgm").write_bytes(b"P5 2 2 255\n" + bytes([9] * 4))
    assert folder.digest(folder.scan(root)) != folder.digest(files)


def test_folder_errors_name_the_row_and_the_fix(tmp_path: Path):
    root = image_folder(tmp_path, 4)
    spec = data.DataSpec(files=("path",), label="label")
    (root / "labels.csv").write_text("path,label\neven/000.pgm,0\nodd/404.pgm,1\n")
    with pytest.raises(UserError, match=r"labels.csv row 2: file 'odd/404.pgm' is not in the folder"):
        data.open_dataset(root, spec)
    (root / "labels.csv").write_text("path,label\n../secret,1\n")
    with pytest.raises(UserError, match="escapes DEST"):
        data.open_dataset(root, spec)
    (root / "labels.csv").unlink()
    with pytest.raises(UserError, match="no labels table"):
        data.open_dataset(root, spec)
    (root / "labels.jsonl").write_text('{"path": "even/000.pgm", "label": 0}\n')
    (root / "labels.parquet").write_bytes(b"x")
    with pytest.raises(UserError, match="more than one labels table"):
        data.open_dataset(root, spec)
    (root / "labels.parquet").unlink()
    assert worker(data.open_dataset(root, data.DataSpec(files=("path",), label="label", read="text",
                                                        inputs=("path",)))).label_values([0]) == [0]
    (root / "link.pgm").symlink_to("/etc/hostname")
    with pytest.raises(UserError, match="symbolic link"):
        folder.scan(root)


def test_manifest_round_trip_and_tampering(tmp_path: Path):
    files = [folder.FileRef("b/x.wav", "ab" * 32, 3), folder.FileRef("a.txt", "cd" * 32, 1)]
    blob = folder.render(files)
    assert blob == folder.render(list(reversed(files)))  # order-independent bytes
    assert sorted(folder.parse(blob, "m")) == ["a.txt", "b/x.wav"]
    bad = blob.replace(b"b/x.wav", b"../x.wav")
    with pytest.raises(UserError, match="escapes"):
        folder.parse(bad, "m")
    with pytest.raises(UserError, match="not an mlci.folder/1 manifest"):
        folder.parse(b'{"files": []}', "m")
    assert folder.objects_base("s3://b/p/q/sha256/ab/" + "c" * 62) == "s3://b/p/q"
    assert folder.objects_base("s3://b/sha256/ab/" + "c" * 62) == "s3://b"
    assert folder.objects_base("s3://b/p/manifest.json") == "s3://b/p"


def test_label_codes_agree_with_label_key_and_the_order_with_its_definition():
    mixed = np.empty(7, dtype=object)
    mixed[:] = [3, "3", 3.0, "b", True, 1, "a"]
    codes, names = data.label_codes(mixed)
    assert names == sorted({data.label_key(v) for v in mixed})
    assert [names[c] for c in codes] == [data.label_key(v) for v in mixed]
    floats = np.array([2.0, 1.0, 2.0, 0.5])
    codes, names = data.label_codes(floats)
    assert names == ["0.5", "1", "2"] and codes.tolist() == [2, 1, 2, 0]

    def reference(labels: list[str], seed: int) -> np.ndarray:  # the order's definition, written plainly
        rng = np.random.default_rng(seed)
        arr = np.asarray(labels, dtype=object)
        keys = np.empty(len(arr))
        for cls in sorted(set(labels)):
            perm = rng.permutation(np.flatnonzero(arr == cls))
            keys[perm] = (np.arange(len(perm)) + rng.random()) / len(perm)
        return np.lexsort((rng.random(len(arr)), keys))

    rng = np.random.default_rng(7)
    for seed in range(25):
        labels = [str(v) for v in rng.integers(0, int(rng.integers(1, 15)), int(rng.integers(1, 2000)))]
        assert (sampling.stratified_order(labels, seed) == reference(labels, seed)).all()
    for _ in range(200):  # ties: argsort + tie runs == lexsort
        n = int(rng.integers(1, 300))
        keys, tiebreak = rng.integers(0, 12, n) / 5.0, rng.integers(0, 3, n).astype(float)
        assert (sampling._sort_by(keys, tiebreak) == np.lexsort((tiebreak, keys))).all()
