#!/usr/bin/env python3
"""Where the compile cost of #[trace] goes: writes a crate of N fns (half async) as
scripts/compile_cost_gen.py does, but in hand-written variants of the expansion, so that each
part's cost can be measured alone (build each with `cargo build`, after `cargo clean -p`, and
compare CPU time as scripts/compile_cost.sh does).

Usage: compile_cost_parts.py <dir> <variant> <n>
variant: untraced | ours | skip (the macro, as compile_cost_gen.py) | bare (async bodies in a
bare `async move {..}.await`, nothing else) | rpit (async fns as `fn -> impl Future` returning
`async move {..}`, nothing else) | h_full (the expansion by hand) | h_noargs (without
argument capture) | h_noret (without output and error capture) | h_none (neither) |
h_none_nocl (and the sync body in a plain closure call). The hand-written variants name the
runtime's macro-only `__private` API, which may change with the expansion.
"""
import os
import sys
RUNTIME = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "honeyhive-runtime"))
P = "::honeyhive_runtime::__private"
def body(i):
    return f"""if name.is_empty() {{ return Err(format!("empty name in {i}")); }}
    let n = u32::try_from(name.len()).map_err(|e| e.to_string())?;
    Ok(n + count + {i})"""
def meta(i):
    return f"""static __HH_META: {P}::Meta = {P}::Meta {{ name: "f{i}", event_type: {P}::EventType::Tool, sample_rate: ::core::option::Option::None, attr_capacity: 4usize, root: {P}::RootState::new() }};"""
def args_rec(var):
    return f"""if let ::core::option::Option::Some(__hh_rec) = {var}.recording() {{
        #[allow(unused_imports)] use {P}::{{DebugProbe as _, NumberProbe as _, TextProbe as _}};
        (&&&{P}::Capture(&name)).hh_kind().record(__hh_rec, "honeyhive_inputs.name", &name);
        (&&&{P}::Capture(&count)).hh_kind().record(__hh_rec, "honeyhive_inputs.count", &count);
    }}"""
def ret_rec(spanexpr):
    return f"""{{ #[allow(unused_imports)] use {P}::returned::*;
        (&&&&&&&&{P}::Returned(&__hh_ret)).hh_ok_kind().record({spanexpr}, &__hh_ret);
        (&&&&{P}::Returned(&__hh_ret)).hh_err_kind().record({spanexpr}, &__hh_ret); }}"""
def hand(i, is_async, inner, args, ret, closure=True):
    if not is_async:
        call = f"{P}::call_once(move || -> Result<u32, String> {{ {inner}{body(i)} }})" if closure else f"(|| -> Result<u32, String> {{ {inner}{body(i)} }})()"
        return f"""pub fn f{i}(name: &str, count: u32) -> Result<u32, String> {{
    {meta(i)}
    let mut __hh_span = {P}::Span::enter(&__HH_META);
    {args_rec('__hh_span') if args else ''}
    let __hh_ret = {call};
    {ret_rec('&mut __hh_span') if ret else ''}
    __hh_ret
}}
"""
    arg_rec = args_rec('__hh_span') if args else ''
    done = f"|__hh_span: &mut {P}::Span, __hh_ret| {{ {ret_rec('__hh_span')} __hh_ret }}" if ret else f"{P}::pass"
    return f"""pub fn f{i}(name: &str, count: u32) -> impl ::core::future::Future<Output = Result<u32, String>> {{
    {meta(i)}
    {P}::TracedCall::new(&__HH_META, move |__hh_span: &mut {P}::Span| {{
        {arg_rec}
        async move {{ let name = name; let count = count; {inner}{body(i)} }}
    }}, {done})
}}
"""
def main():
    out, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out + "/src", exist_ok=True)
    dep = "" if variant == "untraced" else f'honeyhive-runtime = {{ path = "{RUNTIME}" }}'
    open(out + "/Cargo.toml", "w").write(f'[package]\nname = "ccx_{variant}"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n[dependencies]\n{dep}\n')
    fns = []
    for i in range(n):
        a = i % 2 == 1
        call = f"f{i-1}(name, count).await" if a else f"f{i-1}(name, count)"
        inner = f"let _ = {call};\n" if i > 0 and i % 2 == 0 else ""
        if variant == "bare":
            b = f"async move {{ {inner}{body(i)} }}.await" if a else f"{inner}{body(i)}"
            fns.append(f"pub {'async ' if a else ''}fn f{i}(name: &str, count: u32) -> Result<u32, String> {{\n{b}\n}}\n")
        elif variant == "rpit":
            if a:
                fns.append(f"pub fn f{i}(name: &str, count: u32) -> impl ::core::future::Future<Output = Result<u32, String>> {{\nasync move {{ {inner}{body(i)} }}\n}}\n")
            else:
                fns.append(f"pub fn f{i}(name: &str, count: u32) -> Result<u32, String> {{\n{inner}{body(i)}\n}}\n")
        elif variant in ("untraced", "ours", "skip"):
            attr = {"untraced": "", "ours": "#[honeyhive_runtime::trace]", "skip": "#[honeyhive_runtime::trace(skip_all, skip_output)]"}[variant]
            fns.append(f"{attr}\npub {'async ' if a else ''}fn f{i}(name: &str, count: u32) -> Result<u32, String> {{\n{inner}{body(i)}\n}}\n")
        else:
            args = "noargs" not in variant and "none" not in variant
            ret = "noret" not in variant and "none" not in variant
            fns.append(hand(i, a, inner, args, ret, closure="nocl" not in variant))
    open(out + "/src/lib.rs", "w").write("#![allow(missing_docs, clippy::all, unused)]\n\n" + "\n".join(fns))
main()
