//! `lab bench --attack-step`: the time of one Carlini-Wagner L2 step of the lab's real attack
//! (forward, gradient to the input, Adam, best-so-far bookkeeping) on the committed weights, at
//! batch 1 and 64 on both nets, in the JSON shape of tests/bench/torch_step.py so that
//! `make bench` sets the two side by side (issue 12).

use super::attack::engine_for;
use super::commands::{sample_pack, Res};
use advlab::attacks::{cw::cw_l2, CwParams, Goal, Silent};
use advlab::data::DatasetKind;
use advlab::inference::dataset_tensor;
use std::path::Path;
use std::time::Instant;

/// Steps per timed run: enough to spread the fixed costs of a run (set-up, the final read-back)
/// over many steps, few enough for a 2-core machine.
fn steps_for(dataset: DatasetKind, batch: usize) -> usize {
    match (dataset, batch) {
        (_, 1) => 40,
        (DatasetKind::Mnist, _) => 8,
        (DatasetKind::Cifar10, _) => 4,
    }
}

pub fn attack_step(models: &Path, rounds: usize, json: bool) -> Res {
    let mut results = Vec::new();
    for dataset in [DatasetKind::Mnist, DatasetKind::Cifar10] {
        let engine = engine_for(dataset, models)?;
        let device = engine.device().clone();
        let (_, pack) = sample_pack(dataset, models)?;
        let bare = engine.system(dataset, "none")?.build(&engine.models)?;
        for batch in [1usize, 64] {
            let n = batch.min(pack.len());
            let x = dataset_tensor(&pack, 0, n, &device);
            let goal = Goal::untargeted(pack.labels[..n].iter().map(|&l| l as usize).collect(), 10);
            let steps = steps_for(dataset, batch);
            // One round of the search at the benchmark's constant, without the early abort (its
            // loss read-back every steps/10 would end some runs early and blur the figure).
            let params = |steps| CwParams { steps, binary_search_steps: 1, initial_const: 1.0, abort_early: false, ..CwParams::default() };
            pollster::block_on(cw_l2(&bare, x.clone(), &goal, &params(2), &mut Silent))?;
            let mut runs = Vec::with_capacity(rounds);
            for _ in 0..rounds.max(1) {
                let t = Instant::now();
                pollster::block_on(cw_l2(&bare, x.clone(), &goal, &params(steps), &mut Silent))?;
                runs.push(serde_json::json!({ "ms_per_step": t.elapsed().as_secs_f64() * 1000.0 / steps as f64, "steps": steps }));
            }
            let mut ms: Vec<f64> = runs.iter().map(|r| r["ms_per_step"].as_f64().unwrap()).collect();
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            if !json {
                println!("{} batch {batch}: {median:.1} ms per C&W step (median of {} runs of {steps} steps)", dataset.name(), ms.len());
            }
            results.push(serde_json::json!({ "dataset": dataset.name(), "batch": batch, "ms_per_step_median": median, "runs": runs }));
        }
    }
    if json {
        let out = serde_json::json!({
            "command": format!("lab bench --attack-step --json --rounds {rounds}"),
            "device": format!("{:?}", super::commands::device()),
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    }
    Ok(())
}
