//! The Terra kernel config (kernel-config/): the full .config that
//! `scripts/build-kernel --config-only` makes from the fragment has every
//! fragment line, no container requirement missing, and a KSPP score over
//! the bar with every miss explained. Seconds: no compile.

use anyhow::{ensure, Context, Result};
use terra_kconfig::checks::evaluate;
use terra_kconfig::checks::{CheckList, CONTAINERS, KSPP};
use terra_kconfig::kconfig::{dropped_lines, KernelConfig};
use terra_kconfig::public::{disagreements, Record, KHC_RECORD};
use terra_kconfig::{Report, KSPP_BAR};
use terra_tests::kernel;
use terra_tests::tools::workspace_root;

fn full_config() -> Result<KernelConfig> {
    let path = kernel::config()?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(KernelConfig::parse(&text))
}

#[test]
fn config_meets_container_requirements_and_the_kspp_bar() -> Result<()> {
    let config = full_config()?;
    let kspp = CheckList::parse(KSPP)?;
    let containers = CheckList::parse(CONTAINERS)?;
    let report = Report::new(&kspp, &containers, &config);
    let text = report.render(false);
    // The score, for the test log (cargo test -- --nocapture).
    println!("{text}");

    let c = report.container_score();
    ensure!(
        c.required_missed == 0,
        "container requirements missing:\n{text}"
    );
    let k = report.kspp_score();
    ensure!(
        k.percent() >= KSPP_BAR,
        "KSPP score {:.1}% under {KSPP_BAR}%:\n{text}",
        k.percent()
    );
    ensure!(k.unexplained == 0, "KSPP misses without a reason:\n{text}");
    ensure!(
        report.failures().is_empty(),
        "{:?}\n{text}",
        report.failures()
    );
    ensure!(
        text.contains(&format!("{}/{} met", k.met, k.total)),
        "the report states the KSPP score:\n{text}"
    );
    Ok(())
}

#[test]
fn every_fragment_line_is_in_the_full_config() -> Result<()> {
    let fragment_path = workspace_root().join("kernel-config/terra.config");
    let fragment = KernelConfig::parse(&std::fs::read_to_string(&fragment_path)?);
    let config = full_config()?;
    let dropped = dropped_lines(&fragment, &config);
    ensure!(dropped.is_empty(), "dropped by kconfig: {dropped:?}");
    // Nothing can be a module: the initramfs carries none.
    ensure!(
        config.get("MODULES") == Some("n"),
        "CONFIG_MODULES must be off"
    );
    let modules: Vec<&str> = config
        .iter()
        .filter(|(_, v)| *v == "m")
        .map(|(k, _)| k)
        .collect();
    ensure!(
        modules.is_empty(),
        "modules in a kernel without modules: {modules:?}"
    );
    Ok(())
}

#[test]
fn checker_report_passes_the_full_config() -> Result<()> {
    // What `terra-kconfig CONFIG -v` prints (the binary calls the same function).
    let path = kernel::config()?;
    let (report, pass) = terra_kconfig::check_text(&std::fs::read_to_string(&path)?, true)?;
    ensure!(pass, "{report}");
    ensure!(report.contains("result: PASS"), "{report}");
    ensure!(report.contains("met      CONFIG_WIREGUARD=y"), "{report}");
    Ok(())
}

#[test]
fn our_kspp_checker_and_the_public_list_agree_item_by_item() -> Result<()> {
    // kernel-hardening-checker's verdict on this config, recorded by
    // scripts/khc-record: the same items, the same wanted values, the same
    // verdict on each, hence the same score. A fragment change that flips a
    // KSPP item fails here until the record is made again.
    let config = full_config()?;
    let kspp = CheckList::parse(KSPP)?;
    let record = Record::parse(KHC_RECORD)?;
    let outcomes = evaluate(&kspp, &config);
    let differ = disagreements(&kspp, &outcomes, &record);
    ensure!(
        differ.is_empty(),
        "kspp.toml and {} (commit {}) disagree:\n{}",
        record.tool,
        record.commit,
        differ.join("\n")
    );
    let ours = outcomes.iter().filter(|o| o.met()).count();
    let score = format!("{ours}/{}", outcomes.len());
    println!("KSPP: ours {score}, {} {}", record.tool, record.score);
    ensure!(
        score == record.score,
        "ours {score}, public {}",
        record.score
    );
    // The record is of this kernel series (the fragment's).
    let release = std::fs::read_to_string(kernel::config()?)?;
    ensure!(
        release.contains(&format!(
            "Linux/x86_64 {} Kernel Configuration",
            record.kernel
        )),
        "the record is of kernel {}, the config is another",
        record.kernel
    );
    Ok(())
}
