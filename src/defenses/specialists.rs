//! Specialists+1 (Abbasi & Gagné 2017, "Robustness to adversarial examples through an ensemble
//! of specialists") as He et al. (2017) describe and attack it: the class sets of the
//! specialists from the confusion matrix of adversarial examples, the vote, and the detector on
//! the vote's confidence.
//!
//! Sets (Abbasi & Gagné): for each class i, U_i is class i together with the fewest classes
//! that receive at least 80% of the adversarial examples made from class i (row i of the
//! confusion matrix, diagonal left out); U_{i+10} is its complement. Duplicates are merged, so
//! up to 20 specialists; a set of one class (nothing to tell apart) or of every class (the
//! generalist already is that) has no specialist.
//!
//! Vote (He et al., Sec. on Specialists+1): if every classifier whose set contains some class c
//! predicts c, only those vote and c wins; otherwise all classifiers vote and the class with
//! the most votes wins. The input is flagged as adversarial when the mean confidence (softmax
//! probability of the winner) of the classifiers that voted for the winner is below a
//! threshold set at 5% false positives on benign held-out images.

use crate::models::Ensemble;
use crate::target::Detector;
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// `matrix[true][predicted]` counts of adversarial examples.
pub fn confusion_matrix(labels: &[usize], predicted: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&l, &p) in labels.iter().zip(predicted) {
        m[l][p] += 1;
    }
    m
}

/// U_i: `class` and the fewest other classes whose counts in `row` (the confusions of `class`)
/// reach `coverage` of the row's off-diagonal total; the largest counts first, ties to the lower
/// class. Sorted. A class that is never confused gets `{class}`.
pub fn confusion_set(row: &[u64], class: usize, coverage: f64) -> Vec<usize> {
    let total: u64 = row.iter().enumerate().filter(|(j, _)| *j != class).map(|(_, c)| c).sum();
    let mut others: Vec<usize> = (0..row.len()).filter(|&j| j != class && row[j] > 0).collect();
    others.sort_by(|&a, &b| row[b].cmp(&row[a]).then(a.cmp(&b)));
    let mut set = vec![class];
    let mut covered = 0u64;
    for j in others {
        if covered as f64 >= coverage * total as f64 {
            break;
        }
        covered += row[j];
        set.push(j);
    }
    set.sort_unstable();
    set
}

/// The specialists' sets: U_0..U_{k-1}, then their complements, duplicates merged (first
/// occurrence kept), sets of one class or of every class left out.
pub fn specialist_sets(matrix: &[Vec<u64>], coverage: f64) -> Vec<Vec<usize>> {
    let k = matrix.len();
    let sets: Vec<Vec<usize>> = (0..k).map(|i| confusion_set(&matrix[i], i, coverage)).collect();
    let complements: Vec<Vec<usize>> = sets.iter().map(|s| (0..k).filter(|c| !s.contains(c)).collect()).collect();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for s in sets.into_iter().chain(complements) {
        if s.len() >= 2 && s.len() < k && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// [K, C] membership of each member's set (1 where the class is in it), built on the host.
pub fn membership(sets: &[Vec<usize>], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; sets.len() * classes];
    for (k, s) in sets.iter().enumerate() {
        for &c in s {
            v[k * classes + c] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(v, [sets.len(), classes]), device)
}

/// What the vote decides for a batch.
pub struct VoteOutcome {
    /// [n, C]: ln of the share of the counted votes each class got (1e-30 floor), plus a tie
    /// break (see [`vote`]); its argmax is the winner, its softmax the vote shares.
    pub logits: Tensor<2>,
    /// [n]: mean softmax probability of the winner among the members that voted for it.
    pub confidence: Tensor<1>,
    /// [K, n, C]: each member's vote, one-hot.
    pub votes: Tensor<3>,
}

/// He et al.'s vote on the members' probabilities `probs` [K, n, C] with sets `member` [K, C]
/// (see [`membership`]; member 0, the generalist, holds every class).
///
/// A member votes for its most probable class; a pinned class has probability 0, so a member
/// only votes inside its set, and class c is unanimous exactly when its votes equal the number
/// of members holding c. At most one class is unanimous (the generalist votes once). Unanimous:
/// the counted votes are those of the members holding c, all for c (share 1). Otherwise every
/// member counts and shares are votes / K. In both cases the winner's voters are the members
/// that predicted it. Ties of the majority go to the generalist's class when it is among them,
/// then to the lowest class (tie-break terms of 1e-3 and 1e-5 on the log shares, smaller than
/// any difference of one vote among up to 21 members: ln(21/20) = 0.049).
pub fn vote(probs: Tensor<3>, member: Tensor<2>) -> VoteOutcome {
    let [k, n, c] = probs.dims();
    let device = probs.device();
    // A member's vote: its most probable class (an exact tie of two probabilities, which float
    // softmaxes of real images do not produce, would count as a vote for each).
    let votes = probs.clone().equal(probs.clone().max_dim(2).expand([k, n, c])).float(); // [K, n, C]
    let counts = votes.clone().sum_dim(0).reshape([n, c]);
    let holders = member.sum_dim(0); // [1, C]
    let unanimous = counts.clone().equal(holders.expand([n, c])).float();
    let has = unanimous.clone().sum_dim(1); // [n, 1]: 0 or 1
    let shares = unanimous + counts.div_scalar(k as f32) * has.neg().add_scalar(1.0).expand([n, c]);
    let generalist = votes.clone().slice([0..1]).reshape([n, c]);
    let order = Tensor::<1, Int>::arange(0..c as i64, &device).float().reshape([1, c]).expand([n, c]);
    let logits = shares.clamp_min(1e-30).log() + generalist.mul_scalar(1e-3) - order.mul_scalar(1e-5);
    let winner = logits.clone().equal(logits.clone().max_dim(1).expand([n, c])).float(); // [n, C]
    let w = winner.reshape([1, n, c]).expand([k, n, c]);
    let voted = (votes.clone() * w.clone()).sum_dim(2).reshape([k, n]); // 1 where member k voted for the winner
    let conf = (probs * w).sum_dim(2).reshape([k, n]);
    let confidence = (voted.clone() * conf).sum_dim(0).reshape([n]) / voted.sum_dim(0).reshape([n]);
    VoteOutcome { logits, confidence, votes }
}

/// The vote-confidence detector of Specialists+1 on a stacked ensemble.
pub struct VoteDetector<'a> {
    pub ensemble: &'a Ensemble,
    /// Frozen, on the autodiff device (the adaptive penalty).
    pub grad_ensemble: &'a Ensemble,
    pub sets: Vec<Vec<usize>>,
    /// Flagged below this mean confidence.
    pub min_confidence: f32,
}

/// How far above the minimum confidence the adaptive penalty aims (so that rounding the
/// example to 8 bits does not drop it back under).
pub const CONFIDENCE_MARGIN: f32 = 0.02;

impl VoteDetector<'_> {
    /// The vote on a batch (plain device).
    pub fn vote(&self, x: Tensor<4>) -> VoteOutcome {
        let logits = self.ensemble.forward(x);
        let classes = logits.dims()[2];
        let member = membership(&self.sets, classes, &logits.device());
        vote(softmax(logits, 2), member)
    }

    /// He et al.'s objective on the members' differentiable logits [K, n, C]: the sum of `term`
    /// over the members that must all vote for the class of interest (see [`members_loss`]),
    /// plus a hinge that reaches zero once their mean top probability clears the minimum
    /// confidence by [`CONFIDENCE_MARGIN`] (once they all vote for that class, that mean is the
    /// confidence this detector reads).
    pub fn attack_loss(&self, logits: Tensor<3>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        let (loss, holds) = members_loss(logits.clone(), term);
        let [k, n, _] = logits.dims();
        let top = softmax(logits, 2).max_dim(2).reshape([k, n]);
        let mean = (top * holds.clone()).sum_dim(0).reshape([n]) / holds.sum_dim(0).reshape([n]).clamp_min(1.0);
        loss + mean.neg().add_scalar(self.min_confidence + CONFIDENCE_MARGIN).clamp_min(0.0).mul_scalar(10.0)
    }
}

impl Detector for VoteDetector<'_> {
    fn name(&self) -> String {
        format!("Specialists+1 vote confidence ({} classifiers)", self.sets.len())
    }

    fn shown_as(&self) -> &'static str {
        "confidence"
    }

    /// Score 1 - confidence, so that "above the threshold" means "confidence below the minimum".
    fn threshold(&self) -> f32 {
        1.0 - self.min_confidence
    }

    fn score(&self, x: Tensor<4>) -> Tensor<1> {
        self.vote(x).confidence.neg().add_scalar(1.0)
    }

    /// The whole of He et al.'s objective: the ensemble is the classifier this detector reads,
    /// so its terms and the confidence hinge are one loss ([`Self::attack_loss`]).
    fn adaptive_loss(&self, x: Tensor<4>, _logits: Option<Tensor<2>>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        self.attack_loss(self.grad_ensemble.forward(x), term)
    }
}

/// The sum of `term` over the members that must all vote for the class of interest for it to
/// win unanimously, i.e. those whose set holds it, on the members' logits [K, n, C]; and that
/// mask, [K, n]. A member without the class has it pinned at -1e4, so its term (a C&W margin or a
/// cross-entropy of that class) is about 1e4 in size; those terms are left out (the mask is
/// taken on the detached magnitude).
pub fn members_loss(logits: Tensor<3>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> (Tensor<1>, Tensor<2>) {
    let [k, n, _] = logits.dims();
    let mut total: Option<Tensor<1>> = None;
    let mut masks = Vec::with_capacity(k);
    for m in 0..k {
        let t = term(logits.clone().slice([m..m + 1]).reshape([n as i32, -1]));
        let holds = t.clone().detach().abs().lower_elem(-crate::models::ensemble::PINNED_LOGIT / 2.0).float();
        masks.push(holds.clone().reshape([1, n]));
        let t = t * holds;
        total = Some(match total { Some(s) => s + t, None => t });
    }
    let holds = Tensor::cat(masks, 0).detach();
    (total.unwrap_or_else(|| Tensor::zeros([n], &logits.device())), holds)
}

/// The vote's winner and confidence on every image of `data`, in batches of 250.
pub async fn vote_dataset(detector: &VoteDetector<'_>, data: &crate::data::Dataset, device: &Device) -> Result<(Vec<usize>, Vec<f32>), String> {
    let (mut winners, mut confidence) = (Vec::with_capacity(data.len()), Vec::with_capacity(data.len()));
    for s in (0..data.len()).step_by(250) {
        let e = (s + 250).min(data.len());
        let v = detector.vote(crate::inference::dataset_tensor(data, s, e, device));
        let classes = v.logits.dims()[1];
        let all = crate::inference::read_f32(Tensor::cat(vec![v.logits.reshape([-1]), v.confidence], 0)).await?;
        winners.extend(crate::inference::argmax_rows(&all[..(e - s) * classes], classes));
        confidence.extend_from_slice(&all[(e - s) * classes..]);
    }
    Ok((winners, confidence))
}

/// Calibrates the minimum confidence on benign held-out images as `lab defend` does for
/// feature squeezing: the first half of `held` sets it so that 5% of them fall below, the
/// second half measures the rate it gives.
pub async fn calibrate_vote(detector: &VoteDetector<'_>, held: &crate::data::Dataset, device: &Device) -> Result<crate::models::ensemble::VoteThreshold, String> {
    let half = held.len() / 2;
    if half == 0 {
        return Err("no held-out images to calibrate on".into());
    }
    let (_, fit) = vote_dataset(detector, &held.slice(0, half), device).await?;
    let (_, check) = vote_dataset(detector, &held.slice(half, held.len()), device).await?;
    // Scores are 1 - confidence (higher: more suspicious), as the detector reports them.
    let scores: Vec<f32> = fit.iter().map(|c| 1.0 - c).collect();
    let min_confidence = 1.0 - super::squeeze::threshold_for_rate(&scores, 0.05);
    let flagged = check.iter().filter(|c| 1.0 - **c > 1.0 - min_confidence).count();
    Ok(crate::models::ensemble::VoteThreshold { min_confidence, false_positive_rate: flagged as f64 / check.len().max(1) as f64, calibration_images: half })
}

/// One classifier's line of the vote table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberVote {
    /// Its class set (the generalist: every class).
    pub classes: Vec<usize>,
    /// The class it predicts and its softmax probability.
    pub vote: usize,
    pub confidence: f32,
    /// Whether its vote counted (a unanimous class: only the classifiers holding it count).
    pub counted: bool,
}

/// What the Specialists+1 panel shows for one image: the vote table, the winner, the mean
/// confidence of the winner's voters against the minimum, and the verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VoteReport {
    pub members: Vec<MemberVote>,
    pub winner: usize,
    /// Whether every classifier holding the winner voted for it.
    pub unanimous: bool,
    pub confidence: f32,
    pub min_confidence: f32,
    pub flagged: bool,
}

/// The report for one image `x` ([1, c, h, w]), read back in one transfer.
pub async fn report(detector: &VoteDetector<'_>, x: Tensor<4>) -> Result<VoteReport, String> {
    let probs = softmax(detector.ensemble.forward(x), 2);
    let [k, _, classes] = probs.dims();
    let v = vote(probs.clone(), membership(&detector.sets, classes, &probs.device()));
    let all = crate::inference::read_f32(Tensor::cat(vec![probs.reshape([-1]), v.logits.reshape([-1]), v.confidence], 0)).await?;
    let winner = crate::inference::argmax_rows(&all[k * classes..(k + 1) * classes], classes)[0];
    let confidence = all[(k + 1) * classes];
    let votes: Vec<usize> = crate::inference::argmax_rows(&all[..k * classes], classes);
    let unanimous = detector.sets.iter().zip(&votes).all(|(s, &v)| !s.contains(&winner) || v == winner);
    let members = detector
        .sets
        .iter()
        .zip(&votes)
        .enumerate()
        .map(|(m, (s, &v))| MemberVote { classes: s.clone(), vote: v, confidence: all[m * classes + v], counted: !unanimous || s.contains(&winner) })
        .collect();
    // Flagged exactly as the detector flags (its score 1 - confidence above 1 - the minimum).
    let flagged = 1.0 - confidence > detector.threshold();
    Ok(VoteReport { members, winner, unanimous, confidence, min_confidence: detector.min_confidence, flagged })
}
