//! `tandem-collector`: loads the configuration, binds, serves until SIGTERM or SIGINT.
//! Exit codes: 0 after a clean shutdown, 1 on a runtime failure, 2 on bad configuration or
//! a start-up failure (cannot bind, cannot open the database).

use std::process::ExitCode;

use tandem_collector::config::{self, Command};
use tandem_collector::ServeError;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match config::load(&args, &|name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("tandem-collector {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("tandem-collector: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandem-collector: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("tandem-collector: config error: `listen`: cannot listen on {}: {error}", config.listen);
                return ExitCode::from(2);
            }
        };
        let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_default();
        let platforms: Vec<&str> = [("meta", config.meta.is_some()), ("tiktok", config.tiktok.is_some()), ("ga4", config.ga4.is_some())]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
        // Tests and scripts read this line to learn the port (the first word starting with http://).
        println!(
            "tandem-collector listening on http://{address} (collect path {}, db {}, forwarding to [{}])",
            config.collect_path,
            config.db.display(),
            platforms.join(", ")
        );
        match tandem_collector::serve(config, listener, shutdown_signal()).await {
            Ok(()) => {
                eprintln!("tandem-collector: stopped");
                ExitCode::SUCCESS
            }
            Err(error @ ServeError::Startup(_)) => {
                eprintln!("tandem-collector: {error}");
                ExitCode::from(2)
            }
            Err(error @ ServeError::Runtime(_)) => {
                eprintln!("tandem-collector: {error}");
                ExitCode::from(1)
            }
        }
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
