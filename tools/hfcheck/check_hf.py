#!/usr/bin/env python3
"""Check that Hugging Face transformers loads a clozeloop checkpoint unchanged.

Usage: check_hf.py MODEL_DIR TEXTS_FILE EXPECTED_JSON

MODEL_DIR is a directory written by clozeloop (config.json, model.safetensors,
tokenizer files). EXPECTED_JSON is the output of
`clozeloop predict --model MODEL_DIR --top-k K --file TEXTS_FILE --json`.
The script loads the directory with AutoTokenizer and AutoModelForMaskedLM,
reports any missing, unexpected or mismatched weights, runs the fill-mask
pipeline on the same texts and compares every (token, score) pair with
clozeloop's. Exit status 0 when all agree within --tol, 1 otherwise.
Needs the transformers package (not available on Debian 12; run it where
transformers is installed).
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("texts")
    ap.add_argument("expected")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(args.model_dir)
    model, info = AutoModelForMaskedLM.from_pretrained(args.model_dir, output_loading_info=True)
    model.eval()
    problems = []
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(k):
            problems.append(f"{k}: {info[k]}")

    texts = [l.rstrip("\n") for l in open(args.texts, encoding="utf-8") if l.strip()]
    expected = json.load(open(args.expected, encoding="utf-8"))
    if len(expected) != len(texts):
        problems.append(f"{len(texts)} texts but {len(expected)} expected results")
    k = len(expected[0]["masks"][0]) if expected else 5
    fill = pipeline("fill-mask", model=model, tokenizer=tok, top_k=k, device=-1)

    max_diff = 0.0
    compared = 0
    for text, exp in zip(texts, expected):
        got = fill(text)
        if exp["masks"] and len(exp["masks"]) == 1:
            got = [got]
        if len(got) != len(exp["masks"]):
            problems.append(f"{text!r}: {len(got)} masks in transformers, {len(exp['masks'])} in clozeloop")
            continue
        for m, (g, e) in enumerate(zip(got, exp["masks"])):
            gs = {p["token"]: p["score"] for p in g}
            es = {p["token"]: p["score"] for p in e}
            # Ties at the k-th place may differ; compare the tokens both list.
            common = set(gs) & set(es)
            if len(common) < len(es) - 1:
                problems.append(f"{text!r} mask {m}: top-{k} tokens differ: hf={sorted(gs)} ours={sorted(es)}")
            for t in common:
                d = abs(gs[t] - es[t])
                max_diff = max(max_diff, d)
                compared += 1
            if g[0]["token"] != e[0]["token"] and abs(g[0]["score"] - e[0]["score"]) > args.tol:
                problems.append(f"{text!r} mask {m}: top-1 differs: hf={g[0]['token_str']} ours={e[0]['token_str']}")
            if len(exp["masks"]) == 1 and g[0]["sequence"] != e[0]["sequence"]:
                problems.append(f"{text!r}: sequence differs: hf={g[0]['sequence']!r} ours={e[0]['sequence']!r}")
    if max_diff > args.tol:
        problems.append(f"max score difference {max_diff:.3g} > {args.tol}")

    report = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model_dir": args.model_dir,
        "texts": len(texts),
        "scores_compared": compared,
        "max_abs_score_diff": max_diff,
        "ok": not problems,
        "problems": problems,
    }
    print(json.dumps(report, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
