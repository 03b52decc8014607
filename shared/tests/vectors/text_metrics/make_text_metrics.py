"""Reference values of fuselab's text metrics (shared/src/topla/metrics.rs) on fixed strings.

BLEU-1 is NLTK's sentence_bleu with weights (1, 0, 0, 0), as LLM-TOPLA's calc_metric computes it,
and sacrebleu's sentence BLEU of order 1 (tokenize "none", no smoothing needed when a token
matches); set F1 is NLTK's f_measure; ROUGE-1/2/L are rouge-score's F-measures with its default
tokeniser and no stemming.

    python3 -m venv /tmp/metrics && /tmp/metrics/bin/pip install nltk==3.10.4 sacrebleu==2.6.0 rouge-score==0.1.2
    /tmp/metrics/bin/python shared/tests/vectors/text_metrics/make_text_metrics.py > shared/tests/vectors/text_metrics/text_metrics.json
"""
import json
import re
import warnings

import nltk
import sacrebleu
from nltk.metrics.scores import f_measure
from nltk.translate.bleu_score import sentence_bleu
from rouge_score import rouge_scorer

PAIRS = [
    # (reference / label, prediction)
    ("Barack Obama", "Barack Obama"),
    ("the (Eiffel) Tower", "the Tower"),
    ("1969", "in 1969 the moon landing happened"),
    ("blue whale", "orca"),
    ("the cat sat on the mat", "the the the cat"),
    ("New York City", "new york city is big"),
    ("Paris", "Paris Paris Paris Paris Paris"),
    ("a b c d e", "e d c b a"),
    ("The quick brown fox jumps over the lazy dog.",
     "A quick brown dog jumps over the lazy fox!"),
    ("Police have arrested a man after a fire at a house in Leeds.",
     "A man was arrested by police after a house fire in Leeds on Sunday."),
    ("It's 3.5 km (2.2 mi) long, and 12-metre wide.", "it is 3 5 km long and 12 metres wide"),
    ("Ünïcode wörds stay", "unicode words stay"),
    ("", "something"),
    ("something", ""),
]


def calc_metric(label, prediction):
    """LLM-TOPLA topla_open_ended.py's per-sample computation."""
    truncated = " ".join(prediction.split()[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bleu = sentence_bleu([label.split()], truncated.split(), weights=(1, 0, 0, 0)) if truncated.split() else 0.0
    exact = 1.0 if re.sub(r"\(.*?\)", "", label) == truncated else 0.0
    f1 = f_measure(set(label.split()), set(truncated.split()))
    return float(bleu), exact, float(f1 or 0.0)


def main():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rows = []
    for reference, prediction in PAIRS:
        full_bleu = 0.0
        if prediction.split():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                full_bleu = float(sentence_bleu([reference.split()], prediction.split(), weights=(1, 0, 0, 0)))
        sacre = sacrebleu.metrics.BLEU(max_ngram_order=1, tokenize="none", effective_order=True)
        sacre_score = sacre.sentence_score(prediction, [reference]).score / 100 if prediction else 0.0
        r = scorer.score(reference, prediction)
        bleu, exact, f1 = calc_metric(reference, prediction)
        rows.append({
            "reference": reference,
            "prediction": prediction,
            "nltk_bleu1": full_bleu,
            "sacrebleu_bleu1": sacre_score,
            "searchqa": {"bleu1": bleu, "exact": exact, "f1": f1},
            "rouge1": r["rouge1"].fmeasure,
            "rouge2": r["rouge2"].fmeasure,
            "rougeL": r["rougeL"].fmeasure,
        })
    print(json.dumps({
        "producer": "shared/tests/vectors/text_metrics/make_text_metrics.py",
        "versions": {"nltk": nltk.__version__, "sacrebleu": sacrebleu.__version__, "rouge-score": "0.1.2"},
        "rows": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
