//! `wisp url NAME`: the web URL of an action (as `ops url` prints it).

use clap::Args;
use serde_json::json;

use super::EntityRef;
use super::action::{is_web, web_url};
use crate::Ctx;

#[derive(Debug, Args)]
pub struct UrlArgs {
    /// Action name: NAME or PACKAGE/NAME.
    pub name: String,
}

pub async fn run(ctx: &Ctx, args: UrlArgs) -> anyhow::Result<()> {
    let entity = EntityRef::parse(&args.name, "action")?;
    let client = ctx.client()?;
    let doc = super::get_entity(ctx, &entity, "actions", "action").await?;
    let url = web_url(client.apihost(), &doc);
    if !is_web(&doc) {
        crate::output::note(&format!(
            "{} is not a web action: the URL answers 404 until you run \
             `wisp action update {} --web true`",
            entity.display(),
            args.name
        ));
    }
    if ctx.out.json {
        ctx.out.value(&json!({ "url": url, "web": is_web(&doc) }));
    } else {
        ctx.out.line(&url);
    }
    Ok(())
}
