//! `sightline demo`: runs the demo and prints its final table.

use std::process::ExitCode;

pub async fn demo(opts: crate::demo::DemoOptions) -> anyhow::Result<ExitCode> {
    println!(
        "Sightline demo: {} orders of order-to-cash traffic over {}s on an in-process Kafka cluster.",
        opts.orders, opts.seconds
    );
    let report = crate::demo::run(opts, None).await?;
    println!("{}", report.summary.table());
    println!(
        "demo: produced {} records; read {}; {} events, {} dead-lettered; done in {:.1}s",
        report.produced,
        report.summary.records_consumed(),
        report.summary.events_total(),
        report.summary.dead_lettered_total(),
        report.elapsed.as_secs_f64()
    );
    if report.summary.records_consumed() as usize != report.produced {
        anyhow::bail!(
            "the pipeline read {} of {} records before the deadline",
            report.summary.records_consumed(),
            report.produced
        );
    }
    Ok(ExitCode::SUCCESS)
}
