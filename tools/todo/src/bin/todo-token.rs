//! Prints an HS256 JWT for a user, signed with `JWT_SECRET`: a token for the
//! development stack (`just token alice`). Never use this secret in production.

use clap::Parser;

/// Mint a development JWT.
#[derive(Parser)]
#[command(version, about = "Mint a development JWT (HS256) for the local stack")]
struct Args {
    /// The user id (`sub` claim).
    user: String,
    /// Shared secret the services verify with.
    #[arg(long, env = "JWT_SECRET", default_value = todo_core::auth::jwt::DEV_SECRET)]
    secret: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

fn main() {
    let args = Args::parse();
    println!("{}", todo_testing::tokens::hs256(&args.secret, &args.user, args.ttl));
}
