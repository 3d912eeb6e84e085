// Package acquire chooses which pool items to send to annotators next: the
// acquisition strategies of active learning, computed over per-item scores
// that the model package produces elsewhere.
//
// # Orientation
//
// A [Candidate] carries the raw per-item measures, already aggregated over the
// item's masks (see [Aggregate]):
//
//   - LeastConfidence = 1 − p(top1), in [0, 1]; higher is more uncertain.
//   - Margin = p(top1) − p(top2), in [0, 1]; SMALLER is more uncertain.
//   - Entropy = −Σ p ln p in nats, in [0, ln V]; higher is more uncertain.
//   - BALD = H(mean p) − mean H(p) over MC-dropout samples; higher is more uncertain.
//   - Surprisal = MLM surprisal (e.g. mean −ln p of the original tokens under
//     the pretrained model); higher is more surprising.
//
// Strategies never compare raw measures directly: [Candidate.Uncertainty]
// orients every measure so that HIGHER MEANS SELECT FIRST (for margin it
// returns 1 − Margin). Likewise, aggregating with [AggregateMax] keeps the
// most uncertain mask of an item: the largest least confidence, entropy and
// BALD but the smallest margin.
//
// # Determinism
//
// Every strategy is deterministic given its inputs and [SelectOptions].Seed,
// and independent of the order of the candidates: ties in a score are broken
// by ID (ascending), and the random strategy scores each item by a hash of
// (seed, ID) rather than by shuffling.
//
// # Strategies and cost
//
// n is the number of eligible candidates, k the batch size, d the embedding
// dimension, m the number of labelled embeddings.
//
//   - random, least-confidence, margin, entropy, bald, surprisal: a top-k heap,
//     O(n log k) time, O(k) extra memory.
//   - kcenter (k-center greedy, the core-set method): O(c·(m + k)·d) time
//     for c = min(n, max(cap, k)) candidates (cap defaults to [DefaultKCenterCap]);
//     when n > cap a seeded, order-independent sample of cap candidates is used.
//     Memory O(c·d) for the normalised copy.
//   - hybrid: top n' = factor·k by an uncertainty measure, then k-center greedy
//     inside those: O(n log n' + n'·(m + k)·d).
//   - mix: the sum of its parts.
//
// Strategies are named by strings (see [Parse]) so that workflows can carry
// them in their inputs.
package acquire
