// Package sim runs active-learning simulations: the same acquisition
// strategies (package acquire) and the same fine-tune and evaluation code
// (package mlm, through [Engine]) as the ActiveLearning workflow, in
// process and without Temporal, with an [Oracle] that answers from gold
// labels, optionally with noise.
//
// # Protocol
//
// For every strategy and seed, [Run] starts from the same starting model
// ([Engine.Start] reloads it each time) and:
//
//  1. picks the initial labelled set: Initial items at random (seeded), or
//     ALPS-style by the starting model's MLM surprisal (the acquire
//     "surprisal" strategy over a pool sample);
//  2. asks the oracle, fine-tunes and evaluates: round 0;
//  3. for rounds 1..Rounds: scores the unlabelled pool (or a seeded random
//     sample of PoolSample items of it), selects Batch items with the
//     strategy (labelled items excluded), asks the oracle, fine-tunes on
//     every answer so far and evaluates.
//
// Evaluation is mlm.Evaluate, as in the workflow's Evaluate activity
// (top-1, top-5, MRR, gold NLL; a gold answer of several word pieces is
// scored over as many masks), on the eval set or a seeded random subset of
// it ([EvalSubset]). Fine-tuning passes the run config's fine_tune settings
// to mlm.FineTune as the workflow's FineTune activity does, masked-LM
// replay of the labelled items (answers filled in) included, plus optional
// general replay texts ([LoadReplay]).
//
// By default each round fine-tunes a fresh copy of the starting model on all
// answers so far ([FineTuneFromStart]): the model after a round depends only
// on the labelled set, not on the order in which it was acquired, which is
// the usual protocol in active-learning studies. [FineTuneContinue] keeps
// training the previous round's model instead (as a long-running workflow
// does); it is cheaper but mixes in the effect of training order.
//
// # Metrics
//
// The learning curve of a run is its accuracy against labels used (items
// sent to the oracle, skipped ones included, since they cost annotation
// effort). Its normalised area ([AULC]) is the trapezoid area under the
// curve between the first and the last point divided by the label range
// (last − first labels): the mean accuracy over the label budget, in [0, 1].
// A run's AULC ([RunAULC]) covers its labelled rounds only: round 0 (the
// initial set) is the same for every strategy of a seed.
//
// Every strategy is compared with random seed by seed ([Paired]): the
// per-seed AULC differences, their mean, a percentile bootstrap confidence
// interval ([BootstrapMeanCI]) and an exact two-sided sign test
// ([SignTestP]). Label savings ([LabelsToReach]) compare the strategies'
// mean curves (mean over seeds, round by round) with the final mean
// accuracy of random: the number of labels at which a strategy first
// reaches it, interpolated linearly between rounds; they are reported only
// when random's final top-1 is above the starting model's. [Bought]
// describes what each strategy chose.
package sim
