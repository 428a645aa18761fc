//! `sightline demo`: runs the demo and prints its final table.

use std::process::ExitCode;

pub async fn demo(opts: crate::demo::DemoOptions) -> anyhow::Result<ExitCode> {
    println!(
        "Sightline demo: {} orders of order-to-cash traffic over {}s on an in-process Kafka cluster.",
        opts.orders, opts.seconds
    );
    let report = crate::demo::run(opts, None).await?;
    println!("{}", report.summary.table());
    let order_records = report.summary.order_records_consumed();
    println!(
        "demo: produced {} order-to-cash records; read {}; {} events, {} dead-lettered; done in {:.1}s",
        report.produced,
        order_records,
        report.summary.events_total(),
        report.summary.dead_lettered_total(),
        report.elapsed.as_secs_f64()
    );
    if order_records as usize != report.produced {
        anyhow::bail!(
            "the pipeline read {} of {} order-to-cash records before the deadline",
            order_records,
            report.produced
        );
    }
    Ok(ExitCode::SUCCESS)
}
