"""The paper's figures from run folders: Fig. 4 (stolen-label distribution), Fig. 5 (data curve),
Fig. 2 (t-SNE of the target's penultimate features for ODD-OL and NPDD-SL samples), and the coverage
curves (classes covered, copy performance and agreement against queries, per stealing strategy).
"""

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from copycat_tf.report.runs import Run, from_npdd, stolen_folders  # noqa: E402
from tfrecords_schema.extras import StolenExtra  # noqa: E402


def npdd_label_histograms(runs: list[Run]) -> dict[str, list[int]]:
    """Per problem, the class histogram of the labels stolen for natural (NPDD) images."""
    histograms = {}
    for run in sorted(runs, key=lambda r: (r.variant is not None, r.queries is not None)):  # the paper's setting first
        for _, manifest in stolen_folders(run):
            histogram = StolenExtra.from_dict(manifest.get("extra")).label_histogram
            if histogram and from_npdd(manifest):
                histograms.setdefault(run.problem or "?", histogram)
    return histograms


def label_distribution(runs: list[Run], path: str) -> bool:
    """Fig. 4: per problem, the share of each class among the labels stolen for natural images."""
    histograms = npdd_label_histograms(runs)
    if not histograms:
        return False
    figure, axes = plt.subplots(1, len(histograms), figsize=(4 * len(histograms), 3), squeeze=False)
    for axis, (problem, histogram) in zip(axes[0], sorted(histograms.items())):
        share = np.asarray(histogram, float) / max(1, sum(histogram))
        axis.bar(range(len(share)), share, color=["tab:red" if s == 0 else "tab:blue" for s in share])
        axis.set_title(f"{problem}: {sum(histogram)} stolen labels", fontsize=9)
        axis.set_xlabel("class")
        axis.set_ylabel("share of labels")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def data_curve(runs: list[Run], path: str) -> bool:
    """Fig. 5: copy performance against the number of queries, with and without PDD fine-tuning."""
    targets = {r.problem: r for r in runs if r.kind == "BL" and r.data == "ODD" and r.macro_f1}
    curves: dict[tuple, list[tuple[int, float]]] = {}
    for run in runs:
        target = targets.get(run.problem)
        if run.kind == "CC" and run.queries and run.variant is None and run.macro_f1 is not None and target:
            curves.setdefault((run.problem, run.base_name), []).append((run.queries, run.macro_f1 / target.macro_f1))
    if not curves:
        return False
    figure, axis = plt.subplots(figsize=(6, 4))
    for (problem, name), points in sorted(curves.items()):
        points.sort()
        axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=f"{problem} {name}")
    axis.set_xscale("log")
    axis.set_xlabel("queries (stolen labels)")
    axis.set_ylabel("copy performance (% of target macro F1)")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def coverage_curves(runs: list[Run], path: str) -> bool:
    """Per stealing strategy (runs named NAME.STRATEGY@N): classes covered, copy performance and agreement vs queries."""
    targets = {r.problem: r for r in runs if r.kind == "BL" and r.data == "ODD" and r.macro_f1}
    curves: dict[tuple, list[tuple[int, int, float, float]]] = {}
    for run in runs:
        target = targets.get(run.problem)
        if run.kind != "CC" or not run.queries or not run.variant or run.macro_f1 is None or not target:
            continue
        stolen = [m for _, m in stolen_folders(run) if from_npdd(m)]
        if not stolen:
            continue
        seen = StolenExtra.from_dict(stolen[0].get("extra")).coverage.get("classes_seen")
        agreement = (run.evaluation.get("agreement") or {}).get("overall")
        if seen is None or agreement is None:
            continue
        curves.setdefault((run.problem, run.variant), []).append(
            (run.queries, seen, run.macro_f1 / target.macro_f1, agreement))
    if not curves:
        return False
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for (problem, variant), points in sorted(curves.items()):
        points.sort()
        queries = [p[0] for p in points]
        for axis, column, scale in ((axes[0], 1, 1), (axes[1], 2, 100), (axes[2], 3, 100)):
            axis.plot(queries, [scale * p[column] for p in points], marker="o", label=f"{problem} {variant}")
    for axis, label in zip(axes, ("classes covered", "copy performance (% of target macro F1)", "agreement with target (%)")):
        axis.set_xscale("log")
        axis.set_xlabel("queries")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[0].yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _penultimate_features(model, folder: str, count: int, seed: int):
    import keras
    import tensorflow as tf

    from copycat_tf.training.input import lake_dataset
    from tfrecords_schema import LABELED_IMAGE, open_folder

    size = model.input_shape[1]
    penultimate = keras.Model(model.input, model.layers[-2].output)
    features, labels = [], []
    for images, batch_labels in lake_dataset([open_folder(folder, LABELED_IMAGE)], size, 64, training=False):
        features.append(penultimate.predict(images, verbose=0).reshape(len(images), -1))
        labels.append(batch_labels.numpy())
        if sum(len(f) for f in features) >= 4 * count:
            break
    features, labels = np.concatenate(features), np.concatenate(labels)
    chosen = np.random.default_rng(seed).permutation(len(labels))[:count]
    del tf
    return features[chosen], labels[chosen]


def tsne(target_run: Run, odd_folder: str, npdd_sl_folder: str, path: str, count: int = 300, seed: int = 0) -> bool:
    """Fig. 2: where NPDD-SL images fall among the ODD in the target's penultimate feature space."""
    from sklearn.manifold import TSNE

    from copycat_tf.relevance.figures import load_keras_model

    model = load_keras_model(target_run.path)
    odd_x, odd_y = _penultimate_features(model, odd_folder, count, seed)
    sl_x, sl_y = _penultimate_features(model, npdd_sl_folder, count, seed)
    points = TSNE(n_components=2, init="pca", perplexity=min(30, (len(odd_x) + len(sl_x) - 1) / 3),
                  random_state=seed).fit_transform(np.concatenate([odd_x, sl_x]))
    figure, axis = plt.subplots(figsize=(6, 5))
    colors = plt.get_cmap("tab10")
    for c in np.unique(np.concatenate([odd_y, sl_y])):
        mask = odd_y == c
        axis.scatter(*points[: len(odd_x)][mask].T, s=8, marker="o", color=colors(int(c) % 10), label=f"ODD-OL {c}")
        mask = sl_y == c
        axis.scatter(*points[len(odd_x):][mask].T, s=14, marker="x", color=colors(int(c) % 10))
    axis.set_title(f"t-SNE of {target_run.name} features: ODD-OL (o) and NPDD-SL (x)", fontsize=9)
    axis.legend(fontsize=6, ncol=2, markerscale=1.5)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return os.path.exists(path)
