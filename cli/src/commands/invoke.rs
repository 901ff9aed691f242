//! `wisp invoke NAME key=value ...`: the `ops invoke` shortcut — a blocking invoke that prints
//! only the result.

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value};

use super::{ParamArgs, parse_value};
use crate::Ctx;

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Action name: NAME, PACKAGE/NAME or /NAMESPACE/[PACKAGE/]NAME.
    pub name: String,
    /// Parameters as KEY=VALUE; VALUE is parsed as JSON when it parses, else taken as a string.
    #[arg(value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Print the whole activation record instead of only the result.
    #[arg(short = 'f', long)]
    pub full: bool,
}

pub async fn run(ctx: &Ctx, args: InvokeArgs) -> anyhow::Result<()> {
    let mut params = args.params.to_map()?;
    params.extend(parse_pairs(&args.args)?);
    super::action::invoke(ctx, &args.name, params, true, !args.full).await
}

/// `key=value` words as parameters (split at the first `=`).
pub fn parse_pairs(words: &[String]) -> anyhow::Result<Map<String, Value>> {
    words
        .iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .with_context(|| format!("parameter {w:?} is not KEY=VALUE"))?;
            Ok((k.to_string(), parse_value(v)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_split_at_first_equals() {
        let m = parse_pairs(&["name=World".into(), "n=3".into(), "q=a=b".into()]).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"name": "World", "n": 3, "q": "a=b"})
        );
        assert!(parse_pairs(&["oops".into()]).is_err());
        assert!(parse_pairs(&["=x".into()]).is_err());
    }
}
