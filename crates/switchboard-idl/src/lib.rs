//! `#[interface]`: an RPC interface declared once, on a Rust trait
//! (spec 08-S01). Use it as `switchboard::rpc::interface`; the
//! `switchboard::rpc` module documents the runtime it generates code for.
//!
//! ```ignore
//! use switchboard::rpc::interface;
//!
//! #[interface(uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8", version = "1.0")]
//! pub trait Calc {
//!     #[opnum(0)]
//!     fn add(&self, a: i32, b: i32) -> switchboard::Result<i32>;
//! }
//! ```
//!
//! For a trait `Calc` it keeps the trait as written (less the `#[opnum]`
//! attributes) and adds:
//! - `CalcInterface`: the interface's identity and machine-readable
//!   description (`switchboard::rpc::Interface`);
//! - `CalcClient`: the client proxy, which **implements `Calc`** — a call
//!   is `client.add(2, 3)?`;
//! - `CalcServer<T>`: the server dispatch for any `T: Calc`.
//!
//! A method may be `async fn`: the proxy's method then returns a future
//! that does not block its executor (`switchboard::rpc::Client::call_async`),
//! and the server runs it on the connection's thread
//! (`switchboard::rpc::block_on`).
//!
//! Rules, checked at compile time: every method takes `&self`, has an
//! explicit `#[opnum(N)]`, and the opnums are 0, 1, 2, … in declaration
//! order (methods are only ever added at the end, with a minor version
//! bump); arguments are owned types; the result is `Result<T, E>` where
//! `E` is `switchboard::Error` or implements `switchboard::rpc::RemoteError`
//! (`Result<T>` means `switchboard::Result<T>`).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericArgument, ItemTrait, LitStr, Pat, PathArguments, ReturnType, TraitItem, Type};

/// Declares an RPC interface on a trait; see the crate docs.
#[proc_macro_attribute]
pub fn interface(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The attribute's arguments.
struct Header {
    uuid: [u8; 16],
    uuid_text: String,
    major: u16,
    minor: u16,
}

/// One method, as the generated code needs it.
struct Method {
    name: syn::Ident,
    /// Declared `async fn`.
    is_async: bool,
    opnum: u32,
    args: Vec<(syn::Ident, Type)>,
    ok: Type,
    err: Tokens,
    doc: String,
}

fn expand(attr: Tokens, item: Tokens) -> syn::Result<Tokens> {
    let header = parse_header(attr)?;
    let mut tr: ItemTrait = syn::parse2(item)?;
    let methods = take_methods(&mut tr)?;
    let name = &tr.ident;
    let vis = &tr.vis;
    let iface = format_ident!("{}Interface", name);
    let client = format_ident!("{}Client", name);
    let server = format_ident!("{}Server", name);
    let description = describe(&name.to_string(), &header, &methods);
    let id = header.uuid;
    let (major, minor) = (header.major, header.minor);
    let proxies = methods.iter().map(|m| proxy(&iface, m));
    let arms = methods.iter().map(|m| arm(name, m));
    let rpc = quote!(::switchboard::rpc);
    let allow_async = methods.iter().any(|m| m.is_async).then(|| quote!(#[allow(async_fn_in_trait)]));
    Ok(quote! {
        #allow_async
        #tr

        #[doc = concat!("The identity and description of the RPC interface [`", stringify!(#name), "`].")]
        #[derive(Clone, Copy, Debug)]
        #vis struct #iface;

        impl #rpc::Interface for #iface {
            const ID: #rpc::wire::InterfaceId = #rpc::wire::InterfaceId([#(#id),*]);
            const VERSION: (u16, u16) = (#major, #minor);
            const NAME: &'static str = stringify!(#name);
            const DESCRIPTION: &'static str = #description;
        }

        #[doc = concat!("The client proxy of [`", stringify!(#name), "`]: it implements the trait, each method a call.")]
        #[derive(Debug)]
        #vis struct #client {
            client: ::std::sync::Arc<#rpc::Client>,
        }

        impl #client {
            /// Connects to `binding` (`local:NAME`, `unix:NAME`, `tcp:HOST[PORT]`) and binds the interface.
            ///
            /// # Errors
            /// `ServerUnavailable` (1722) when nothing answers there, `UnknownInterface`
            /// (1717) when the server does not serve this interface and version.
            pub fn connect(binding: &str) -> ::switchboard::Result<#client> {
                #client::bind(#rpc::Client::connect(binding)?)
            }

            /// Connects to `binding` with `options` (the authentication level required, TLS) and binds.
            ///
            /// # Errors
            /// As [`Self::connect`]; `AccessDenied` (5) below the level required on either side.
            pub fn connect_with(binding: &str, options: &#rpc::ClientOptions) -> ::switchboard::Result<#client> {
                #client::bind(#rpc::Client::connect_with(binding, options)?)
            }

            /// Finds a server of this user that registered the interface at a compatible
            /// version with the endpoint mapper, connects (the fastest transport first) and binds.
            ///
            /// # Errors
            /// `NotRegistered` (1753) when none did; as [`Self::connect`].
            pub fn find() -> ::switchboard::Result<#client> {
                Ok(#client { client: ::std::sync::Arc::new(#rpc::Client::find::<#iface>()?) })
            }

            /// Finds a server of the interface on another host through the gateways
            /// (that host's endpoint mapper), connects and binds.
            ///
            /// # Errors
            /// `NotRegistered` (1753) when none is registered there; `NetPath` (53) when
            /// the host does not answer; as [`Self::connect`].
            pub fn find_on(host: &str) -> ::switchboard::Result<#client> {
                Ok(#client { client: ::std::sync::Arc::new(#rpc::Client::find_on::<#iface>(host)?) })
            }

            /// Binds the interface on a connection made earlier.
            ///
            /// # Errors
            /// As [`Self::connect`].
            pub fn bind(client: #rpc::Client) -> ::switchboard::Result<#client> {
                client.bind::<#iface>()?;
                Ok(#client { client: ::std::sync::Arc::new(client) })
            }

            /// The connection, for its settings (the call timeout).
            pub fn client(&self) -> &#rpc::Client {
                &self.client
            }
        }

        impl #name for #client {
            #(#proxies)*
        }

        #[doc = concat!("The server dispatch of [`", stringify!(#name), "`]: serves any implementation.")]
        #[derive(Debug)]
        #vis struct #server<T>(pub T);

        impl<T: #name + Send + Sync + 'static> #rpc::Serve for #server<T> {
            fn interface(&self) -> (#rpc::wire::InterfaceId, (u16, u16)) {
                (<#iface as #rpc::Interface>::ID, <#iface as #rpc::Interface>::VERSION)
            }

            fn description(&self) -> &'static str {
                <#iface as #rpc::Interface>::DESCRIPTION
            }

            fn name(&self) -> &'static str {
                <#iface as #rpc::Interface>::NAME
            }

            fn dispatch(&self, opnum: u32, args: &[u8], out: &mut ::std::vec::Vec<u8>) -> ::core::result::Result<(), #rpc::wire::FaultBody> {
                match opnum {
                    #(#arms)*
                    _ => Err(#rpc::no_such_method(opnum)),
                }
            }
        }
    })
}

fn parse_header(attr: Tokens) -> syn::Result<Header> {
    let mut uuid: Option<LitStr> = None;
    let mut version: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("uuid") {
            uuid = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("version") {
            version = Some(meta.value()?.parse()?);
        } else {
            return Err(meta.error("expected `uuid = \"…\"` or `version = \"major.minor\"`"));
        }
        Ok(())
    });
    parser.parse2(attr)?;
    let uuid = uuid.ok_or_else(|| Error::new(Span::call_site(), "#[interface] needs `uuid = \"…\"`"))?;
    let version =
        version.ok_or_else(|| Error::new(Span::call_site(), "#[interface] needs `version = \"major.minor\"`"))?;
    let bytes = parse_uuid(&uuid.value()).ok_or_else(|| Error::new(uuid.span(), "a UUID is 8-4-4-4-12 hex digits"))?;
    let (major, minor) = version
        .value()
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| Error::new(version.span(), "a version is `major.minor`, each 0-65535"))?;
    Ok(Header { uuid: bytes, uuid_text: uuid.value().to_ascii_lowercase(), major, minor })
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = text.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex = groups.concat();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Reads the methods, checking the rules, and strips their `#[opnum]`.
fn take_methods(tr: &mut ItemTrait) -> syn::Result<Vec<Method>> {
    let mut methods = Vec::new();
    for item in &mut tr.items {
        let TraitItem::Fn(f) = item else {
            return Err(Error::new(item.span(), "an interface trait holds only methods"));
        };
        let opnum = take_opnum(f)?;
        if opnum != methods.len() as u32 {
            return Err(Error::new(
                f.sig.ident.span(),
                format!("opnums are 0, 1, 2, … in declaration order: this method must be #[opnum({})] (methods are only added at the end)", methods.len()),
            ));
        }
        methods.push(method(f, opnum)?);
    }
    Ok(methods)
}

fn take_opnum(f: &mut syn::TraitItemFn) -> syn::Result<u32> {
    let at = f.attrs.iter().position(|a| a.path().is_ident("opnum"));
    let Some(at) = at else {
        return Err(Error::new(f.sig.ident.span(), "every interface method needs an explicit #[opnum(N)]"));
    };
    let attr = f.attrs.remove(at);
    let lit: syn::LitInt = attr.parse_args()?;
    lit.base10_parse()
}

fn method(f: &syn::TraitItemFn, opnum: u32) -> syn::Result<Method> {
    let sig = &f.sig;
    if !sig.generics.params.is_empty() {
        return Err(Error::new(sig.generics.span(), "interface methods cannot be generic"));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => return Err(Error::new(sig.ident.span(), "an interface method takes `&self` first")),
    }
    let mut args = Vec::new();
    for input in inputs {
        let FnArg::Typed(pt) = input else { unreachable!("only the first argument is a receiver") };
        let Pat::Ident(id) = &*pt.pat else {
            return Err(Error::new(pt.pat.span(), "name each argument (no patterns)"));
        };
        if matches!(*pt.ty, Type::Reference(_)) {
            return Err(Error::new(
                pt.ty.span(),
                "arguments are owned types (String, not &str): the server decodes them",
            ));
        }
        args.push((id.ident.clone(), (*pt.ty).clone()));
    }
    let (ok, err) = result_types(&sig.output)?;
    Ok(Method {
        name: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        opnum,
        args,
        ok,
        err,
        doc: doc_of(&f.attrs),
    })
}

/// `Result<T, E>` → (T, E); `Result<T>` → (T, switchboard::Error).
fn result_types(output: &ReturnType) -> syn::Result<(Type, Tokens)> {
    let bad = |span| {
        Error::new(span, "an interface method returns `Result<T, E>` (E: switchboard::Error or an rpc::RemoteError)")
    };
    let ReturnType::Type(_, ty) = output else { return Err(bad(output.span())) };
    let Type::Path(p) = &**ty else { return Err(bad(ty.span())) };
    let last = p.path.segments.last().ok_or_else(|| bad(ty.span()))?;
    let PathArguments::AngleBracketed(generics) = &last.arguments else { return Err(bad(ty.span())) };
    if last.ident != "Result" {
        return Err(bad(ty.span()));
    }
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types[..] {
        [ok] => Ok((ok.clone(), quote!(::switchboard::Error))),
        [ok, err] => Ok((ok.clone(), quote!(#err))),
        _ => Err(bad(ty.span())),
    }
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let lines = attrs.iter().filter(|a| a.path().is_ident("doc")).filter_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_owned()),
            _ => None,
        },
        _ => None,
    });
    lines.collect::<Vec<_>>().join(" ")
}

/// The proxy's method: arguments as an array, one call.
fn proxy(iface: &syn::Ident, m: &Method) -> Tokens {
    let name = &m.name;
    let opnum = m.opnum;
    let (ok, err) = (&m.ok, &m.err);
    let params = m.args.iter().map(|(n, t)| quote!(#n: #t));
    let names = m.args.iter().map(|(n, _)| n);
    let args = match m.args.is_empty() {
        true => quote!(&[(); 0]),
        false => quote!(&(#(#names,)*)),
    };
    match m.is_async {
        true => quote! {
            async fn #name(&self, #(#params),*) -> ::core::result::Result<#ok, #err> {
                ::switchboard::rpc::Client::call_async::<#iface, _, #ok, #err>(&self.client, #opnum, #args).await
            }
        },
        false => quote! {
            fn #name(&self, #(#params),*) -> ::core::result::Result<#ok, #err> {
                self.client.call::<#iface, _, #ok, #err>(#opnum, #args)
            }
        },
    }
}

/// The dispatch arm of one method.
fn arm(trait_name: &syn::Ident, m: &Method) -> Tokens {
    let (name, opnum) = (&m.name, m.opnum);
    let names: Vec<_> = m.args.iter().map(|(n, _)| n).collect();
    let types = m.args.iter().map(|(_, t)| t);
    let decode = match m.args.is_empty() {
        true => quote!(let _: [(); 0] = ::switchboard::rpc::args(args)?;),
        false => quote!(let (#(#names,)*): (#(#types,)*) = ::switchboard::rpc::args(args)?;),
    };
    let run = match m.is_async {
        true => quote!(::switchboard::rpc::block_on(#trait_name::#name(&self.0, #(#names),*))),
        false => quote!(#trait_name::#name(&self.0, #(#names),*)),
    };
    quote! {
        #opnum => {
            #decode
            ::switchboard::rpc::reply(out, #run)
        }
    }
}

/// The interface description, as JSON text.
fn describe(name: &str, h: &Header, methods: &[Method]) -> String {
    let ty = |t: &dyn quote::ToTokens| json(&t.to_token_stream().to_string().replace(' ', ""));
    let methods: Vec<String> = methods
        .iter()
        .map(|m| {
            let args: Vec<String> = m
                .args
                .iter()
                .map(|(n, t)| format!("{{\"name\":{},\"type\":{}}}", json(&n.to_string()), ty(t)))
                .collect();
            format!(
                "{{\"name\":{},\"opnum\":{},\"args\":[{}],\"result\":{},\"error\":{},\"doc\":{}}}",
                json(&m.name.to_string()),
                m.opnum,
                args.join(","),
                ty(&m.ok),
                ty(&m.err),
                json(&m.doc)
            )
        })
        .collect();
    format!(
        "{{\"name\":{},\"uuid\":{},\"version\":[{},{}],\"methods\":[{}]}}",
        json(name),
        json(&h.uuid_text),
        h.major,
        h.minor,
        methods.join(",")
    )
}

/// `s` as a JSON string.
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: Tokens) -> String {
        let attr = quote!(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1.0");
        match expand(attr, body) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rpc_s01_opnums_are_explicit_dense_and_in_order() {
        assert!(refused(quote!(
            trait T {
                fn a(&self) -> Result<()>;
            }
        ))
        .contains("explicit #[opnum"));
        assert!(refused(quote!(
            trait T {
                #[opnum(1)]
                fn a(&self) -> Result<()>;
            }
        ))
        .contains("#[opnum(0)]"));
        let gap = quote!(
            trait T {
                #[opnum(0)]
                fn a(&self) -> Result<()>;
                #[opnum(2)]
                fn b(&self) -> Result<()>;
            }
        );
        assert!(refused(gap).contains("must be #[opnum(1)]"));
        let swapped = quote!(
            trait T {
                #[opnum(1)]
                fn a(&self) -> Result<()>;
                #[opnum(0)]
                fn b(&self) -> Result<()>;
            }
        );
        assert!(refused(swapped).contains("only added at the end"));
    }

    #[test]
    fn rpc_s01_methods_take_self_owned_arguments_and_return_a_result() {
        assert!(refused(quote!(
            trait T {
                #[opnum(0)]
                fn a(&self, s: &str) -> Result<()>;
            }
        ))
        .contains("owned"));
        assert!(refused(quote!(
            trait T {
                #[opnum(0)]
                fn a(&self) -> u32;
            }
        ))
        .contains("returns `Result"));
        assert!(refused(quote!(
            trait T {
                #[opnum(0)]
                fn a(&mut self) -> Result<()>;
            }
        ))
        .contains("&self"));
        assert!(refused(quote!(
            trait T {
                #[opnum(0)]
                fn a() -> Result<()>;
            }
        ))
        .contains("&self"));
        assert!(refused(quote!(
            trait T {
                #[opnum(0)]
                fn a<X>(&self, x: X) -> Result<()>;
            }
        ))
        .contains("generic"));
        assert!(refused(quote!(
            trait T {
                type X;
            }
        ))
        .contains("only methods"));
    }

    #[test]
    fn rpc_s01_the_header_needs_a_uuid_and_a_version() {
        let body = quote!(
            trait T {
                #[opnum(0)]
                fn a(&self) -> Result<()>;
            }
        );
        let e = |attr: Tokens| expand(attr, body.clone()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(quote!(version = "1.0")).contains("uuid"));
        assert!(e(quote!(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10")).contains("version"));
        assert!(e(quote!(uuid = "not-a-uuid", version = "1.0")).contains("8-4-4-4-12"));
        assert!(e(quote!(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1")).contains("major.minor"));
        assert!(e(quote!(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "1.70000")).contains("major.minor"));
        assert!(expand(quote!(uuid = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", version = "3.4"), body).is_ok());
    }

    #[test]
    fn rpc_s01_the_description_is_json_with_escaped_docs() {
        assert_eq!(json("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }
}
