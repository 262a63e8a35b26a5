use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_footfall-attribution");

fn json(args: &[&str]) -> Value {
    let out = Command::new(BIN).args(args).output().expect("run");
    testkit::assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn close(v: &Value, want: f64, tol: f64) {
    let got = v.as_f64().expect("a number");
    assert!((got - want).abs() <= tol, "{got} vs {want}");
}

#[test]
fn compare_prints_the_attribution_md_test_vectors() {
    let v = json(&[
        "compare",
        "--exposed",
        "288/12000",
        "--control",
        "960/48000",
    ]);
    close(&v["newcombe"]["lo"], 0.001106, 1e-6);
    close(&v["newcombe"]["hi"], 0.007139, 1e-6);
    close(&v["katz"]["lo"], 1.053553, 1e-6);
    close(&v["katz"]["hi"], 1.366803, 1e-6);
    close(&v["wald"]["lo"], 0.000989, 1e-6);
    close(&v["exposed"]["wilson"]["lo"], 0.021410, 1e-6);
    close(&v["exposed"]["wilson"]["hi"], 0.026894, 1e-6);
    close(&v["difference"], 0.004, 1e-12);
    let v = json(&["compare", "--exposed", "5/400", "--control", "2/400"]);
    close(&v["newcombe"]["lo"], -0.007376, 1e-6);
    close(&v["newcombe"]["hi"], 0.024320, 1e-6);
    close(&v["katz"]["hi"], 12.81027, 1e-5);
}

#[test]
fn plan_prints_the_power_table_and_the_minimum_detectable_effect() {
    let v = json(&[
        "plan",
        "--baseline",
        "0.02",
        "--lift-pp",
        "0.4",
        "--ratio",
        "5",
        "--n",
        "12356",
    ]);
    let n80 = v["exposed_needed_80"].as_u64().expect("count");
    assert!(n80.abs_diff(12_356) <= 1, "{n80}");
    assert!(v["exposed_needed_90"].as_u64().expect("count") > n80);
    close(&v["minimum_detectable_pp_80"], 0.4, 1e-3);
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (
            vec!["compare", "--exposed", "3/2", "--control", "1/10"],
            "converters <= devices",
        ),
        (
            vec!["compare", "--exposed", "x", "--control", "1/10"],
            "CONVERTERS/DEVICES",
        ),
        (
            vec!["plan", "--baseline", "2", "--lift-pp", "1"],
            "--baseline",
        ),
        (
            vec![
                "report",
                "--campaign",
                "c",
                "--out",
                "/nonexistent",
                "--target-lift-pp",
                "0",
            ],
            "--target-lift-pp",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
