//! `report.html`: the headline, the method in a sentence, the charts and the tables.

use std::fmt::Write as _;

use super::svg::{curves_svg, daily_svg, intervals_svg, Bar};
use super::{esc, Agreement, Report};
use crate::design::PassClass;
use crate::estimate::{Estimate, HeadlineMethod, WindowResult};

/// The confidence level as the page writes it ("95 %").
fn level(r: &Report) -> String {
    let pct = format!("{:.1}", 100.0 * r.params.confidence);
    format!("{} %", pct.trim_end_matches(".0"))
}

fn pp(x: f64) -> String {
    format!("{:+.2} pp", 100.0 * x)
}

/// The page.
pub(super) fn page(r: &Report) -> String {
    let level = level(r);
    let primary = r.windows.iter().find(|w| w.primary).expect("primary");
    let c = &primary.comparison;
    let money = |x: f64| format!("{x:.0} {}", esc(&r.campaign.currency));
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Campaign lift: {id}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}}\
         h1{{font-size:1.5em}} h2{{font-size:1.15em;margin-top:2em}}\
         table{{border-collapse:collapse;width:100%;font-size:.9em}} td,th{{padding:.3em .5em;border-bottom:1px solid #ddd;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}} .headline{{font-size:1.3em;background:#f3f6fa;padding:1em;border-radius:6px}}\
         .warn{{background:#fff3cd;padding:1em;border-radius:6px}} .chart{{width:100%;height:auto}}\
         .grid{{stroke:#eee}} .zero{{stroke:#888}} .tick{{font-size:11px;fill:#555}}\
         .exposed{{stroke:#d6562b;stroke-width:2.5}} .control{{stroke:#2b6cd6;stroke-width:2.5}}\
         .exposed-fill{{fill:#d6562b}} .control-fill{{fill:#2b6cd6}} .bar{{stroke:#333;stroke-width:2}} .point{{fill:#d6562b}}\
         .key span{{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}} small{{color:#666}}\
         </style></head><body>\
         <h1>Did the campaign bring people to the stores?</h1>\
         <p><b>{id}</b>: creative <b>{cr}</b> of <b>{brand}</b> on {boards} boards, {start} to {end}; \
         spend {spend}. Data up to {dend}.</p>",
        id = esc(&r.campaign.id),
        cr = esc(&r.campaign.creative),
        brand = esc(&r.campaign.brand),
        boards = r.campaign.boards,
        start = r.campaign.start,
        end = r.campaign.end,
        spend = money(r.campaign.spend),
        dend = r.data_end,
    );
    if r.status != "insufficient_data" {
        let _ = write!(
            s,
            "<p class=\"headline\">Devices that passed a board while this creative was on screen visited one of \
             {brand}'s stores within {w} day(s) <b>{d}</b> more often than devices that passed the same boards \
             during other brands' ads ({level} interval {lo} to {hi}, {method}; {ce:.2} % vs {cc:.2} %; p = {pv:.3}).</p>",
            brand = esc(&r.campaign.brand),
            w = primary.window_days,
            d = pp(primary.headline.estimate),
            lo = pp(primary.headline.interval.lo),
            hi = pp(primary.headline.interval.hi),
            method = primary.headline.method.label(),
            ce = 100.0 * c.exposed.rate,
            cc = 100.0 * c.control.rate,
            pv = c.p_value
        );
        if r.status == "underpowered" {
            let _ = write!(
                s,
                "<p class=\"warn\"><b>Underpowered.</b> The interval includes 0, and with these devices the \
                 smallest lift this comparison detects with 80 % power is {mde}, above the {target:.2} pp the \
                 campaign was planned to detect. This does not show that the campaign had no effect: a longer \
                 flight, more boards or more linkable devices would be needed to tell.</p>",
                mde = r.mde_pp.map_or("unknown".to_owned(), |m| format!("{m:.2} pp")),
                target = r.params.target_lift_pp,
            );
        }
    } else {
        let _ = write!(
            s,
            "<p class=\"warn\"><b>Insufficient data</b> for a published lift in the primary {w}-day window: {}. \
             The figures below are for the analyst, not for publication.</p>",
            esc(&primary.gate.reasons.join("; ")),
            w = primary.window_days
        );
    }
    let t = &r.totals;
    let few = format!("fewer than {}", r.params.k_devices);
    let n = |x: Option<u64>| x.map_or(few.clone(), |x| x.to_string());
    let passes = |c: PassClass| n(t.passes.get(&c).copied().unwrap_or(Some(0)));
    let _ = write!(
        s,
        "<h2>Who was compared</h2><p>{passers} devices passed the campaign's boards during the flight; \
         {linkable} ({share}) were linkable across sites (a stable address or a loyalty link), \
         the rest are counted for footfall but cannot be followed to a store. Each linkable device joins \
         one arm at its first clean pass: <b>{ne} exposed</b> (our creative on screen for at least 1 s \
         of the pass) and <b>{nc} control</b> (the same boards, our creative not on screen). \
         Set aside: {amb} ambiguous passes, {long} passes longer than a {loop_s} s loop, {oor} passes while \
         the creative was out of rotation, {staff} staff devices, {inside} devices already inside a store. \
         <small>Counts under {k} are not published.</small></p>",
        passers = n(t.passers),
        linkable = n(t.linkable_passers),
        share = r
            .linkable_share
            .map_or("n/a".to_owned(), |x| format!("{:.0} %", 100.0 * x)),
        ne = n(t.exposed_devices),
        nc = n(t.control_devices),
        amb = passes(PassClass::Ambiguous),
        long = passes(PassClass::Long),
        oor = passes(PassClass::OutOfRotation),
        loop_s = r.campaign.loop_secs,
        staff = n(t.staff_devices),
        inside = n(t.already_inside_devices),
        k = r.params.k_devices,
    );
    for b in &r.epoch_boundaries {
        let _ = write!(
            s,
            "<p{warn}>Device keys changed on {day} (epoch {e}), inside the period this report reads. {what}</p>",
            warn = if b.bridged { "" } else { " class=\"warn\"" },
            day = b.day,
            e = b.epoch,
            what = if b.bridged {
                format!(
                    "Devices were followed across it as one ({} had their next key from the sensors' bridge).",
                    b.pairs.map_or(few.clone(), |n| n.to_string())
                )
            } else {
                "Devices were <b>not</b> followed across it (no bridge pairs, or another boundary was \
                 bridged): a device seen on both sides counts as two, and its conversions after the change \
                 are missed."
                    .to_owned()
            },
        );
    }
    s.push_str(&geo_section(r));
    s.push_str("<h2>Conversion over the window</h2><p class=\"key\"><span class=\"exposed-fill\" style=\"background:#d6562b\"></span>exposed<span style=\"background:#2b6cd6\"></span>control</p>");
    s.push_str(&curves_svg(r));
    let _ = write!(s, "<h2>Lift by window</h2><p><small>Absolute lift in percentage points with its {level} interval \
        (the board-day cluster bootstrap's with at least as many clusters as the gate asks, else Newcombe's); \
        devices followed up for the whole window.</small></p>");
    let rows: Vec<Bar> = r
        .windows
        .iter()
        .map(|w| {
            let c = &w.comparison;
            let est = Estimate {
                estimate: w.headline.estimate,
                interval: w.headline.interval,
            };
            (
                format!("{} d", w.window_days),
                (c.exposed.devices > 0 && c.control.devices > 0).then_some(est),
            )
        })
        .collect();
    s.push_str(&intervals_svg(
        "Lift by window",
        &rows,
        "not yet followed up",
    ));
    let _ = write!(
        s,
        "<table><tr><th>window</th><th>exposed</th><th>control</th><th>lift</th><th>{level} interval</th>\
         <th>relative</th><th>p</th><th>incremental</th><th>attributed</th></tr>",
    );
    for w in &r.windows {
        let c = &w.comparison;
        if c.exposed.devices == 0 || c.control.devices == 0 {
            let _ = write!(
                s,
                "<tr><td>{} d</td><td colspan=\"8\">not yet followed up for the whole window</td></tr>",
                w.window_days
            );
            continue;
        }
        let _ = write!(
            s,
            "<tr><td>{} d{}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{} to {}</td><td>{}</td>\
             <td>{:.3}</td><td>{:.0}</td><td>{}</td></tr>",
            w.window_days,
            if w.primary { " (primary)" } else { "" },
            c.exposed.converters,
            c.exposed.devices,
            c.control.converters,
            c.control.devices,
            pp(w.headline.estimate),
            pp(w.headline.interval.lo),
            pp(w.headline.interval.hi),
            c.relative_lift
                .map_or("n/a".to_owned(), |l| format!("{:+.0} %", 100.0 * l)),
            c.p_value,
            w.incremental_converters.estimate,
            w.attributed_converters,
        );
    }
    for days in &r.suppressed_windows {
        let _ = write!(
            s,
            "<tr><td>{days} d</td><td colspan=\"8\">suppressed: an arm has fewer than {} devices or {} \
             converters, or differs by fewer than {} converters from another window over the same devices</td></tr>",
            r.params.k_devices, r.params.k_converters, r.params.k_converters
        );
    }
    s.push_str("</table>");
    let _ = write!(
        s,
        "<p><small><b>Incremental</b> converters are the visits the campaign caused among sensed exposed \
         devices (n<sub>e</sub> × lift); <b>attributed</b> are all exposed converters, most of whom would \
         have come anyway.</small></p>"
    );
    s.push_str("<h2>Robustness (primary window)</h2><table>");
    let est = |e: Option<Estimate>| {
        e.map_or("n/a".to_owned(), |e| {
            format!(
                "{} ({} to {})",
                pp(e.estimate),
                pp(e.interval.lo),
                pp(e.interval.hi)
            )
        })
    };
    let _ = write!(
        s,
        "<tr><td>Newcombe (devices independent){nh}</td><td>{}</td></tr>\
         <tr><td>Day-cluster bootstrap (board-day, B = {b}, {cl} clusters){bh}</td><td>{}</td></tr>\
         <tr><td>Design effect</td><td>{}</td></tr>\
         <tr><td>Stratified (board × weekday × hour block{strata})</td><td>{}</td></tr>\
         <tr><td>CUPED (pre-period {pre} d visits)</td><td>{}</td></tr>\
         <tr><td>Randomization inference p</td><td>{}</td></tr>\
         <tr><td>Pre-period visits, exposed vs control</td><td>{:.3} vs {:.3} (difference {:+.3}, {:+.3} to {:+.3})</td></tr>\
         <tr><td>Placebo brand ({})</td><td>{}</td></tr>\
         <tr><td>Minimum detectable lift (80 % power)</td><td>{}</td></tr></table>",
        est(Some(Estimate {
            estimate: c.difference,
            interval: c.newcombe
        })),
        est(primary.bootstrap),
        primary
            .design_effect
            .map_or("n/a".to_owned(), |d| format!("{d:.2}")),
        est(primary.stratified),
        est(primary.cuped),
        primary
            .randomization_p
            .map_or("n/a".to_owned(), |p| format!("{p:.3}")),
        primary.pre_period_exposed,
        primary.pre_period_control,
        primary.pre_period_difference.estimate,
        primary.pre_period_difference.interval.lo,
        primary.pre_period_difference.interval.hi,
        esc(r.placebo_brand.as_deref().unwrap_or("none")),
        primary.placebo_brand.as_ref().map_or(if primary.placebo_suppressed {
            format!("suppressed: an arm has fewer than {} converters", r.params.k_converters)
        } else {
            "n/a".to_owned()
        }, |p| format!(
            "{} ({} to {})",
            pp(p.difference),
            pp(p.newcombe.lo),
            pp(p.newcombe.hi)
        )),
        r.mde_pp.map_or("n/a".to_owned(), |m| format!("{m:.2} pp")),
        b = r.params.bootstrap,
        cl = primary.clusters,
        nh = if primary.headline.method == HeadlineMethod::Newcombe {
            " (headline)"
        } else {
            ""
        },
        bh = if primary.headline.method == HeadlineMethod::ClusterBootstrap {
            " (headline)"
        } else {
            ""
        },
        strata = primary.strata.map_or(String::new(), |st| format!(
            "; {} strata on their own, {} sparse ones by Mantel-Haenszel, {} devices in one-arm strata left out",
            st.dense, st.sparse, st.excluded_devices
        )),
        pre = r.params.pre_days,
    );
    let rv = &primary.revenue;
    let _ = write!(
        s,
        "<h2>Revenue</h2><p>Loyalty-linked receipts at {brand} stores within the window, per device \
         (winsorized at the 99th percentile of the spenders{cap}): exposed {re:.2}, control {rc:.2}. Incremental revenue {inc} \
         ({level} bootstrap interval {lo} to {hi}); iROAS {iroas}.{people}</p>",
        brand = esc(&r.campaign.brand),
        cap = rv.winsorized_at.map_or_else(
            || format!(", not shown: fewer than {} spenders reach it", r.params.k_converters),
            |c| format!(", {c:.2}")
        ),
        re = rv.per_device_exposed,
        rc = rv.per_device_control,
        inc = money(rv.incremental.estimate),
        lo = money(rv.incremental.interval.lo),
        hi = money(rv.incremental.interval.hi),
        iroas = rv.iroas.map_or("n/a".to_owned(), |i| format!(
            "{:.2} ({:.2} to {:.2})",
            i.estimate, i.interval.lo, i.interval.hi
        )),
        people = primary.people.as_ref().map_or(
            " People-scale figures need the board and store capture rates (--board-capture, --store-capture).".to_owned(),
            |p| format!(
                " At people scale (corrected for capture): {:.0} incremental visitors ({:.0} to {:.0}); cost per incremental visitor {}.",
                p.incremental_visitors.estimate,
                p.incremental_visitors.interval.lo,
                p.incremental_visitors.interval.hi,
                p.cost_per_incremental_visitor.map_or("n/a".to_owned(), money)
            )
        ),
    );
    s.push_str(&loyalty_paragraph(r, primary));
    let _ = write!(
        s,
        "<h2>Lift by board</h2><p><small>Primary window; boards with fewer than {kd} devices or {kc} \
         converters in an arm are suppressed, with others until the hidden boards' sum is not small \
         either, so that no subtraction from the window's totals reveals them.</small></p>",
        kd = r.params.k_devices,
        kc = r.params.k_converters
    );
    let rows: Vec<Bar> = r
        .boards
        .iter()
        .map(|b| (b.board.clone(), b.difference))
        .collect();
    s.push_str(&intervals_svg("Lift by board", &rows, "suppressed"));
    s.push_str("<h2>Daily exposures</h2><p class=\"key\"><span style=\"background:#d6562b\"></span>exposed passes<span style=\"background:#2b6cd6\"></span>control passes</p>");
    s.push_str(&daily_svg(r));
    let _ = write!(
        s,
        "<h2>Method</h2><p><small>Exposed and control are passers-by of the same boards, told apart only \
         by the creative on screen during their pass (a natural experiment, see ATTRIBUTION.md). \
         A pass is an in-view stay at a board (RSSI at or above the board's threshold, new after a 30-min gap), \
         padded by {pad} s; a visit is a stay at a store of at least its minimum dwell and RSSI threshold in \
         opening hours. Sensed-device figures are primary; the tables in report.json and the CSV files hold \
         every number.</small></p></body></html>",
        pad = r.params.pad_secs
    );
    s
}

/// The store-level estimate beside the device comparison, and where the two agree.
fn geo_section(r: &Report) -> String {
    let (level, alpha) = (level(r), 1.0 - r.params.confidence);
    let g = &r.geo;
    let pct = |x: f64| format!("{:+.1} %", 100.0 * x);
    let mut s = format!(
        "<h2>Store-level estimate: everyone the stores counted</h2><p>Most phones change their          address, so the comparison above follows only the linkable few. This estimate uses every          visitor the store sensors counted (people, from the store traffic counts): {brand}'s          {nt} store(s) within {radius:.0} m of a campaign board against its {nc} other store(s),          visitors a day in the test period ({t0} to {t1}: the flight and the primary window) over          the pre-period ({p0} to {p1}), as a difference in differences with randomization inference          over which stores are near the boards. Near the boards: {tp:.1} then {tt:.1} visitors a day;          the others: {cp:.1} then {ct:.1}.",
        brand = esc(&r.campaign.brand),
        nt = g.treated.len(),
        nc = g.control.len(),
        radius = g.radius_m,
        t0 = g.test_period[0],
        t1 = g.test_period[1],
        p0 = g.pre_period[0],
        p1 = g.pre_period[1],
        tp = g.treated_daily[0],
        tt = g.treated_daily[1],
        cp = g.control_daily[0],
        ct = g.control_daily[1],
    );
    if !g.excluded.is_empty() {
        let _ = write!(
            s,
            " Left out: {}.",
            g.excluded
                .iter()
                .map(|e| format!("{} ({})", esc(&e.store), e.reason))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s.push_str("</p>");
    let _ = match (g.lift, g.interval, g.incremental_visitors, g.incremental_interval) {
        (Some(l), Some(i), Some(v), Some(vi)) => write!(
            s,
            "<p class=\"headline\">Visitors at the stores near the boards: <b>{l}</b> beyond the other \
             stores' trend ({level} interval {lo} to {hi}; p = {p:.3} over {n} {how} assignments), about \
             <b>{v:.0}</b> incremental visitors ({vlo:.0} to {vhi:.0}). The smallest lift this comparison \
             detects with 80 % power: {mde}.{null}</p>",
            l = pct(l),
            lo = pct(i.lo),
            hi = pct(i.hi),
            p = g.p_value.unwrap_or(f64::NAN),
            n = g.assignments,
            how = if g.exact { "(all)" } else { "sampled" },
            vlo = vi.lo,
            vhi = vi.hi,
            mde = g.mde.map_or("n/a".to_owned(), pct),
            null = if i.contains(0.0) {
                " The interval includes 0: this does not show that the campaign had no effect \
                 on the stores, only that none as large as that was there."
            } else {
                ""
            },
        ),
        (Some(l), None, _, _) => write!(
            s,
            "<p class=\"warn\"><b>Too few stores for a store-level interval.</b> With {nt} store(s) \
             near the boards and {nc} away, the rarest assignment of stores still has a p-value of \
             {min:.2}, above {alpha:.2}: no effect, however large, could be told from chance. The point \
             estimate, {l}, is for the analyst, not for publication.</p>",
            nt = g.treated.len(),
            nc = g.control.len(),
            min = g.min_p,
            l = pct(l),
        ),
        _ => write!(
            s,
            "<p class=\"warn\"><b>No store-level comparison:</b> {} within {:.0} m of the campaign's \
             boards (with traffic counts in both periods).</p>",
            if g.treated.is_empty() {
                "no store"
            } else {
                "every store"
            },
            g.radius_m
        ),
    };
    if let Some(t) = g.pre_trend {
        let _ =
            write!(
            s,
            "<p{warn}>Placebo before the flight (the same comparison between the pre-period's two \
             halves): {l} (p = {p:.3}).{what}</p>",
            warn = if t.p_value < alpha { " class=\"warn\"" } else { "" },
            l = pct(t.lift),
            p = t.p_value,
            what = if t.p_value < alpha {
                " <b>The stores near the boards were already trending apart</b>: the store-level \
                 estimate may be that trend, not the campaign."
            } else {
                " No sign that the two groups were trending apart."
            }
        );
    }
    let _ = write!(
        s,
        "<p><b>The two estimators:</b> {}</p>",
        match r.agreement {
            Agreement::BothFindAnEffect => "both find an effect, in the same direction: they agree.",
            Agreement::NeitherFindsAnEffect =>
                "neither interval excludes 0: they agree that no effect is shown.",
            Agreement::OnlyOneFindsAnEffect =>
                "one interval excludes 0 and the other does not: they do not conflict, one is less \
                 precise (they measure different things: devices that saw the creative, and all \
                 visitors of the nearby stores).",
            Agreement::Opposite =>
                "<b>they disagree</b>: both intervals exclude 0, on opposite sides. Neither should be \
                 published before the analyst has found why.",
            Agreement::GeoUnavailable =>
                "only the device comparison has an interval.",
        }
    );
    s
}

/// Purchase frequency and mean check of the loyalty-linked devices, primary window.
fn loyalty_paragraph(r: &Report, w: &WindowResult) -> String {
    let level = level(r);
    let money = |x: f64| format!("{x:.2} {}", esc(&r.campaign.currency));
    let interval = |e: &Estimate, f: &dyn Fn(f64) -> String| {
        format!("{} to {}", f(e.interval.lo), f(e.interval.hi))
    };
    match &w.loyalty {
        Some(l) => format!(
            "<h2>Loyalty members</h2><p>Of the devices linked to a loyalty card ({le} exposed, {lc} control; \
             {be} and {bc} bought), the exposed made <b>{fe:.3}</b> purchases each at {brand} within the \
             window and the control {fc:.3}: a difference of <b>{fd:+.3}</b> ({level} bootstrap interval {fi}). \
             Mean check: exposed {ce}, control {cc}, difference {cd}.</p>",
            le = l.linked_exposed,
            lc = l.linked_control,
            be = l.buyers_exposed,
            bc = l.buyers_control,
            fe = l.frequency_exposed,
            fc = l.frequency_control,
            fd = l.frequency_difference.estimate,
            fi = interval(&l.frequency_difference, &|x| format!("{x:+.3}")),
            brand = esc(&r.campaign.brand),
            ce = money(l.check_exposed),
            cc = money(l.check_control),
            cd = l.check_difference.as_ref().map_or("n/a".to_owned(), |d| format!(
                "{:+.2} ({})",
                d.estimate,
                interval(d, &|x| format!("{x:+.2}"))
            )),
        ),
        None if w.loyalty_suppressed => format!(
            "<h2>Loyalty members</h2><p>Suppressed: an arm has fewer than {} loyalty-linked devices or {} buyers.</p>",
            r.params.k_devices, r.params.k_converters
        ),
        None => "<h2>Loyalty members</h2><p>No loyalty-linked devices in both arms.</p>".to_owned(),
    }
}
