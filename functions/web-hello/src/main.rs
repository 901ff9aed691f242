//! `web-hello`: an HTML web action greeting `name`, taken from the parameters (query and body
//! parameters are merged into them) or else from the raw query string.
use wisp_sdk::web::{Request, Response, escape_html};

#[wisp_sdk::action]
fn main(req: Request) -> Response {
    let name = req
        .param_or_query("name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "stranger".to_owned());
    let name = escape_html(&name);
    wisp_sdk::log!("web-hello: {} {}", req.method, req.path);
    Response::html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Hello</title></head>\
         <body><h1>Hello, {name}!</h1></body></html>"
    ))
}
