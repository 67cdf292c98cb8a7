"""An order's parameters are validated and normalised by service type, as API v2 says."""

import time
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.errors import Refusal
from orders.params import (
    FLAT_TYPES,
    SERVICE_TYPES,
    SUBSCRIPTION_DELAYS,
    OrderRequest,
    parse_order,
)

LINK = "https://instagram.com/p/abc"
TODAY = date(2026, 6, 1)
LOW, HIGH = 10, 1000
TOO_FEW = f"Quantity less than minimal {LOW}"
TOO_MANY = f"Quantity more than maximum {HIGH}"


def parse(service_type: str, params: Mapping[str, object], **limits: Any) -> OrderRequest:
    options: dict[str, Any] = {"min_quantity": LOW, "max_quantity": HIGH, "dripfeed": True,
                               "today": TODAY}
    options.update(limits)
    return parse_order(service_type, params, **options)


def refusal(service_type: str, params: Mapping[str, object], **limits: Any) -> str:
    with pytest.raises(Refusal) as caught:
        parse(service_type, params, **limits)
    assert str(caught.value) == caught.value.message
    return caught.value.message


def request(service_type: str, **fields: Any) -> OrderRequest:
    values: dict[str, Any] = {"link": LINK, "runs": None, "interval": None, "extra": {}}
    values.update(fields)
    return OrderRequest(service_type=service_type, **values)


def lines(count: int, prefix: str = "line") -> str:
    return "\n".join(f"{prefix} {i}" for i in range(count))


# A valid order of every type: what the client sends, the request it becomes, what goes upstream.
VALID: list[tuple[str, dict[str, object], OrderRequest, dict[str, str]]] = [
    ("Default", {"link": LINK, "quantity": "100"},
     request("Default", quantity=100, charged_units=100),
     {"link": LINK, "quantity": "100"}),
    ("Package", {"link": LINK},
     request("Package", quantity=1, charged_units=1),
     {"link": LINK}),
    ("Custom Comments", {"link": LINK, "comments": lines(12)},
     request("Custom Comments", quantity=12, charged_units=12, extra={"comments": lines(12)}),
     {"link": LINK, "comments": lines(12)}),
    ("Custom Comments Package", {"link": LINK, "comments": "Nice!\nGreat"},
     request("Custom Comments Package", quantity=1, charged_units=1,
             extra={"comments": "Nice!\nGreat"}),
     {"link": LINK, "comments": "Nice!\nGreat"}),
    ("Mentions with Hashtags",
     {"link": LINK, "quantity": "50", "usernames": "alice\nbob", "hashtags": "#x\n#y"},
     request("Mentions with Hashtags", quantity=50, charged_units=50,
             extra={"usernames": "alice\nbob", "hashtags": "#x\n#y"}),
     {"link": LINK, "quantity": "50", "usernames": "alice\nbob", "hashtags": "#x\n#y"}),
    ("Mentions Custom List", {"link": LINK, "usernames": lines(10, "user")},
     request("Mentions Custom List", quantity=10, charged_units=10,
             extra={"usernames": lines(10, "user")}),
     {"link": LINK, "usernames": lines(10, "user")}),
    ("Mentions Hashtag", {"link": LINK, "quantity": "20", "hashtag": "#travel"},
     request("Mentions Hashtag", quantity=20, charged_units=20, extra={"hashtag": "#travel"}),
     {"link": LINK, "quantity": "20", "hashtag": "#travel"}),
    ("Mentions User Followers",
     {"link": LINK, "quantity": "30", "username": "https://instagram.com/someone"},
     request("Mentions User Followers", quantity=30, charged_units=30,
             extra={"username": "https://instagram.com/someone"}),
     {"link": LINK, "quantity": "30", "username": "https://instagram.com/someone"}),
    ("Mentions Media Likers",
     {"link": LINK, "quantity": "40", "media": "https://instagram.com/p/media1"},
     request("Mentions Media Likers", quantity=40, charged_units=40,
             extra={"media": "https://instagram.com/p/media1"}),
     {"link": LINK, "quantity": "40", "media": "https://instagram.com/p/media1"}),
    ("Subscriptions",
     {"username": "someone", "min": "50", "max": "100", "posts": "3", "old_posts": "2",
      "delay": "30", "expiry": "25/12/2026"},
     request("Subscriptions", link="", quantity=100, charged_units=500,
             extra={"username": "someone", "min": "50", "max": "100", "delay": "30",
                    "posts": "3", "old_posts": "2", "expiry": "25/12/2026"}),
     {"username": "someone", "min": "50", "max": "100", "delay": "30", "posts": "3",
      "old_posts": "2", "expiry": "25/12/2026"}),
    ("Comment Likes", {"link": LINK, "quantity": "15", "username": "owner"},
     request("Comment Likes", quantity=15, charged_units=15, extra={"username": "owner"}),
     {"link": LINK, "quantity": "15", "username": "owner"}),
    ("Comment Replies", {"link": LINK, "username": "owner", "comments": lines(11)},
     request("Comment Replies", quantity=11, charged_units=11,
             extra={"username": "owner", "comments": lines(11)}),
     {"link": LINK, "username": "owner", "comments": lines(11)}),
    ("Poll", {"link": LINK, "quantity": "25", "answer_number": "2"},
     request("Poll", quantity=25, charged_units=25, extra={"answer_number": "2"}),
     {"link": LINK, "quantity": "25", "answer_number": "2"}),
    ("Invites from Groups", {"link": LINK, "quantity": "60", "groups": "group1\ngroup2"},
     request("Invites from Groups", quantity=60, charged_units=60,
             extra={"groups": "group1\ngroup2"}),
     {"link": LINK, "quantity": "60", "groups": "group1\ngroup2"}),
]
VALID_BY_TYPE = {kind: params for kind, params, _, _ in VALID}
OPTIONAL = {"posts", "old_posts", "expiry"}


def test_the_fourteen_service_types_are_spelled_as_the_contract_spells_them() -> None:
    assert len(SERVICE_TYPES) == 14
    assert [kind for kind, _, _, _ in VALID] == list(SERVICE_TYPES)
    assert {"Package", "Custom Comments Package"} == FLAT_TYPES


@pytest.mark.parametrize(("service_type", "params", "expected", "upstream"), VALID,
                         ids=[kind for kind, _, _, _ in VALID])
def test_a_valid_order_of_each_type_becomes_the_exact_request_and_upstream_params(
    service_type: str, params: dict[str, object], expected: OrderRequest,
    upstream: dict[str, str],
) -> None:
    result = parse(service_type, params)

    assert result == expected
    assert result.upstream_params() == upstream


def test_an_unknown_service_type_is_a_programming_error_not_a_client_error() -> None:
    with pytest.raises(ValueError, match="Likes Premium") as caught:
        parse("Likes Premium", {"link": LINK, "quantity": "100"})
    assert not isinstance(caught.value, Refusal)


@pytest.mark.parametrize(("service_type", "name"), [
    (kind, name) for kind, params, _, _ in VALID for name in params if name not in OPTIONAL
])
@pytest.mark.parametrize("missing", [None, "", "   ", []])
def test_a_missing_required_parameter_is_an_incorrect_request(
    service_type: str, name: str, missing: object,
) -> None:
    params = {**VALID_BY_TYPE[service_type], name: missing}
    assert refusal(service_type, params) == "Incorrect request"
    del params[name]
    assert refusal(service_type, params) == "Incorrect request"


@pytest.mark.parametrize("service_type", SERVICE_TYPES)
def test_parameters_the_type_does_not_take_are_ignored(service_type: str) -> None:
    params = VALID_BY_TYPE[service_type]
    noisy = {"key": "k", "action": "add", "service": "1", "junk": object(), "answer": 3.5,
             "comment": ["a", "b"], **params}

    assert parse(service_type, noisy) == parse(service_type, params)


@pytest.mark.parametrize("service_type", [
    "Package", "Custom Comments", "Custom Comments Package", "Mentions Custom List",
    "Comment Replies", "Subscriptions",
])
@pytest.mark.parametrize("quantity", ["5000", "-1", "lots", 2.5])
def test_quantity_is_ignored_where_the_type_derives_it(service_type: str, quantity: object) -> None:
    params = VALID_BY_TYPE[service_type]
    result = parse(service_type, {**params, "quantity": quantity})

    assert result == parse(service_type, params)
    assert "quantity" not in result.upstream_params()


# --- link -------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", [
    "instagram.com/p/abc", "www.instagram.com/p/abc", "ftp://instagram.com/p/abc",
    "javascript:alert(1)", "https://", "https:///p/abc", "https://insta gram.com/p",
    "https://instagram.com/p/a b", "https://instagram.com/p/\x00", "https://instagram.com/a\u00a0b",
    "https://[::1/p", "https://instagram.com:99999/p", "https://instagram.com:port/p",
    "https://instagram.com/" + "a" * 980, "@someone", "https://instagram.com/\ud800",
])
def test_a_link_that_is_not_an_http_url_with_a_host_is_an_incorrect_link(link: str) -> None:
    assert refusal("Default", {"link": link, "quantity": "100"}) == "Incorrect link"


@pytest.mark.parametrize("link", [
    "http://instagram.com/p/abc", "HTTPS://Instagram.com/p/abc?utm=1#x",
    "https://t.me/channel", "https://instagram.com/" + "a" * 977, "https://пример.рф/пост",
    "https://[2001:db8::1]:8443/p",
])
def test_http_and_https_links_with_a_host_are_accepted_as_given(link: str) -> None:
    assert parse("Package", {"link": f"  {link}\n"}).link == link


def test_a_link_of_exactly_1000_characters_is_the_longest_accepted() -> None:
    link = "https://instagram.com/" + "a" * (1000 - len("https://instagram.com/"))
    assert parse("Package", {"link": link}).link == link
    assert refusal("Package", {"link": link + "a"}) == "Incorrect link"


# --- quantity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [
    "abc", "-100", "+100", "100.0", "1e3", "1,000", "1 000", "0", "00", "0x64", "²",
    "\uff11\uff10\uff10",  # fullwidth digits: str.isdigit() says yes, API v2 says no
    "1000000000000", -100, 0, 100.0, True, b"100", {"n": 100}, ["100", "200"],
    pytest.param(10**5000, id="5001-digit-int"),
])
def test_a_quantity_that_is_not_a_positive_whole_number_is_an_incorrect_request(
    quantity: object,
) -> None:
    assert refusal("Default", {"link": LINK, "quantity": quantity}) == "Incorrect request"


@pytest.mark.parametrize("quantity", ["100", " 100 ", "\t100\n", "0100", 100, ["100"], ("100",)])
def test_a_quantity_may_come_as_text_int_or_a_one_item_list(quantity: object) -> None:
    result = parse("Default", {"link": LINK, "quantity": quantity})

    assert result.quantity == 100
    assert result.upstream_params()["quantity"] == "100"


def test_quantity_outside_the_service_limits_names_the_limit() -> None:
    assert parse("Default", {"link": LINK, "quantity": "10"}).quantity == 10
    assert parse("Default", {"link": LINK, "quantity": "1000"}).quantity == 1000
    assert refusal("Default", {"link": LINK, "quantity": "9"}) == "Quantity less than minimal 10"
    assert refusal("Default", {"link": LINK, "quantity": "1001"}) == (
        "Quantity more than maximum 1000")
    assert refusal("Poll", {"link": LINK, "quantity": "49", "answer_number": "1"},
                   min_quantity=50, max_quantity=10000) == "Quantity less than minimal 50"
    assert refusal("Poll", {"link": LINK, "quantity": "999999999999", "answer_number": "1"},
                   min_quantity=50, max_quantity=10000) == "Quantity more than maximum 10000"


def test_a_malformed_request_is_reported_before_an_out_of_range_quantity() -> None:
    params = {"link": LINK, "quantity": "1", "hashtag": ""}
    assert refusal("Mentions Hashtag", params) == "Incorrect request"
    assert refusal("Default", {"link": "nope", "quantity": "1"}) == "Incorrect link"


# --- lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("comments", [
    "one\ntwo\nthree",
    "one\r\ntwo\r\nthree",
    "one\rtwo\rthree",
    "one\r\ntwo\nthree\r",
    "\n\n  one  \n\n\t two\r\n \r\n three \n\n",
    ["one", "two", "three"],
    ["one\ntwo", "", "  ", "three"],
    ("one", "two\r\nthree"),
])
def test_a_list_reads_the_same_from_lf_crlf_cr_or_a_list_with_blank_lines_dropped(
    comments: object,
) -> None:
    result = parse("Custom Comments", {"link": LINK, "comments": comments}, min_quantity=1)

    assert result.extra["comments"] == "one\ntwo\nthree"
    assert result.quantity == result.charged_units == 3


@pytest.mark.parametrize(("service_type", "name", "other"), [
    ("Custom Comments", "comments", {}),
    ("Comment Replies", "comments", {"username": "owner"}),
    ("Mentions Custom List", "usernames", {}),
])
def test_a_quantity_derived_from_lines_is_bounded_by_the_service_limits(
    service_type: str, name: str, other: dict[str, str],
) -> None:
    def order(count: int) -> dict[str, object]:
        return {"link": LINK, name: lines(count) + "\n\n\n", **other}

    assert parse(service_type, order(10)).charged_units == 10
    assert parse(service_type, order(1000)).charged_units == 1000
    assert refusal(service_type, order(9)) == TOO_FEW
    assert refusal(service_type, order(1001)) == TOO_MANY
    assert refusal(service_type, order(0)) == "Incorrect request"


def test_a_custom_comments_package_is_flat_whatever_its_number_of_comments() -> None:
    for count in (1, 5, 5000):
        result = parse("Custom Comments Package", {"link": LINK, "comments": lines(count)},
                       min_quantity=100, max_quantity=200)
        assert (result.quantity, result.charged_units) == (1, 1)
    assert refusal("Custom Comments Package", {"link": LINK, "comments": "\n \r\n"}) == (
        "Incorrect request")


@pytest.mark.parametrize(("service_type", "params"), [
    ("Mentions with Hashtags", {"usernames": "alice", "hashtags": "\n\n"}),
    ("Mentions with Hashtags", {"usernames": [" ", ""], "hashtags": "#x"}),
    ("Invites from Groups", {"groups": "\r\n"}),
    ("Invites from Groups", {"groups": []}),
])
def test_types_that_need_a_list_refuse_an_empty_one(
    service_type: str, params: dict[str, object],
) -> None:
    assert refusal(service_type, {"link": LINK, "quantity": "100", **params}) == (
        "Incorrect request")


def test_a_list_line_may_have_500_characters_but_not_501() -> None:
    ok = "a" * 500
    assert parse("Custom Comments Package", {"link": LINK, "comments": f"x\n{ok}"})
    assert refusal("Custom Comments Package", {"link": LINK, "comments": f"x\n{ok}b"}) == (
        "Incorrect request")


def test_a_list_may_have_10000_lines_but_not_10001() -> None:
    params: dict[str, object] = {"link": LINK, "comments": lines(10_000)}
    assert parse("Custom Comments", params, max_quantity=50_000).quantity == 10_000
    params = {"link": LINK, "comments": lines(10_001)}
    assert refusal("Custom Comments", params, max_quantity=50_000) == "Incorrect request"
    assert refusal("Custom Comments Package", params) == "Incorrect request"


@pytest.mark.parametrize("comments", [
    "x" * 1_000_000,
    "nice post\n" * 100_000,
    "\n" * 6_000_000,
    ["x"] * 20_000,
])
def test_a_huge_list_is_refused_quickly(comments: object) -> None:
    started = time.perf_counter()

    assert refusal("Custom Comments", {"link": LINK, "comments": comments}) == "Incorrect request"
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("comment", ["bad\x00byte", "bell\x07", "escape\x1b[31m", "n\x85el",
                                     "lone \ud800 surrogate", "del\x7f"])
def test_control_characters_in_text_are_an_incorrect_request(comment: str) -> None:
    params = {"link": LINK, "comments": f"fine\n{comment}"}
    assert refusal("Custom Comments Package", params) == "Incorrect request"
    params = {"link": LINK, "quantity": "100", "hashtag": comment}
    assert refusal("Mentions Hashtag", params) == "Incorrect request"


def test_unicode_text_is_kept_and_measured_in_characters() -> None:
    comments = "Отличный пост! 🔥\n很好看\n\tcafé\tcrème \n" + "😀" * 500
    result = parse("Custom Comments", {"link": LINK, "comments": comments}, min_quantity=1)

    assert result.extra["comments"] == "Отличный пост! 🔥\n很好看\ncafé\tcrème\n" + "😀" * 500
    assert result.charged_units == 4
    hashtag = parse("Mentions Hashtag", {"link": LINK, "quantity": 10, "hashtag": " #путешествия "})
    assert hashtag.extra == {"hashtag": "#путешествия"}


@pytest.mark.parametrize("bad", [["a", 3.5], ["a", None, b"b"], [["nested"]]])
def test_a_list_of_anything_but_text_is_an_incorrect_request(bad: object) -> None:
    assert refusal("Invites from Groups", {"link": LINK, "quantity": 100, "groups": bad}) == (
        "Incorrect request")


def test_list_items_may_be_numbers() -> None:
    result = parse("Invites from Groups", {"link": LINK, "quantity": 100, "groups": [123, "g"]})
    assert result.extra == {"groups": "123\ng"}


# --- single-text parameters -------------------------------------------------------------------


@pytest.mark.parametrize(("service_type", "name", "other"), [
    ("Mentions Hashtag", "hashtag", {"quantity": "100"}),
    ("Comment Likes", "username", {"quantity": "100"}),
    ("Comment Replies", "username", {"comments": lines(20)}),
])
def test_a_single_text_parameter_may_have_500_characters_but_not_501(
    service_type: str, name: str, other: dict[str, str],
) -> None:
    assert parse(service_type, {"link": LINK, name: "é" * 500, **other}).extra[name] == "é" * 500
    assert refusal(service_type, {"link": LINK, name: "é" * 501, **other}) == "Incorrect request"


@pytest.mark.parametrize(("service_type", "name"), [
    ("Mentions User Followers", "username"), ("Mentions Media Likers", "media"),
])
@pytest.mark.parametrize("url", [
    "someone", "@someone", "instagram.com/someone", "ftp://instagram.com/x",
    "https://instagram.com/some one", "https://instagram.com/" + "a" * 480,
])
def test_a_bad_scrape_source_url_is_an_incorrect_request_not_an_incorrect_link(
    service_type: str, name: str, url: str,
) -> None:
    params = {"link": LINK, "quantity": "100", name: url}
    assert refusal(service_type, params) == "Incorrect request"


@pytest.mark.parametrize("answer", ["0", "-1", "1001", "abc", "1.5", 0, 1001])
def test_a_poll_answer_number_is_a_positive_integer_up_to_1000(answer: object) -> None:
    params = {"link": LINK, "quantity": "100", "answer_number": answer}
    assert refusal("Poll", params) == "Incorrect request"


def test_a_poll_answer_number_is_normalised_to_decimal_text() -> None:
    for given_answer, expected in [(1, "1"), ("007", "7"), (" 1000 ", "1000")]:
        params = {"link": LINK, "quantity": "100", "answer_number": given_answer}
        assert parse("Poll", params).extra == {"answer_number": expected}


# --- drip-feed --------------------------------------------------------------------------------


def test_a_drip_fed_order_charges_each_runs_quantity() -> None:
    result = parse("Default", {"link": LINK, "quantity": "100", "runs": "5", "interval": "30"})

    assert result == request("Default", quantity=100, runs=5, interval=30, charged_units=500)
    assert result.upstream_params() == {"link": LINK, "quantity": "100", "runs": "5",
                                        "interval": "30"}


@pytest.mark.parametrize(("runs", "interval"), [
    (None, None), ("", ""), ("0", "0"), (0, 0), ("0", None), (None, " 0 "), ("00", "")])
def test_zero_or_blank_runs_and_interval_mean_no_drip_feed(runs: object, interval: object) -> None:
    params = {"link": LINK, "quantity": "100", "runs": runs, "interval": interval}
    for allowed in (True, False):
        result = parse("Default", params, dripfeed=allowed)
        assert (result.runs, result.interval, result.charged_units) == (None, None, 100)
        assert result.upstream_params() == {"link": LINK, "quantity": "100"}


def test_drip_feed_on_a_service_without_it_is_an_incorrect_request() -> None:
    params = {"link": LINK, "quantity": "100", "runs": "5", "interval": "30"}
    assert refusal("Default", params, dripfeed=False) == "Incorrect request"


@pytest.mark.parametrize(("runs", "interval"), [
    ("5", None), ("5", "0"), (None, "30"), ("0", "30"), ("1", "30"), ("1001", "30"),
    ("5", "10081"), ("-5", "30"), ("5", "-30"), ("five", "30"), ("5", "1.5"), ("5", "abc"),
])
def test_runs_and_interval_must_both_be_given_and_within_bounds(
    runs: object, interval: object,
) -> None:
    params = {"link": LINK, "quantity": "100", "runs": runs, "interval": interval}
    assert refusal("Default", params) == "Incorrect request"


@pytest.mark.parametrize(("runs", "interval"), [(2, 1), (1000, 10080), ("3", " 60 ")])
def test_runs_and_interval_at_their_bounds_are_accepted(runs: object, interval: object) -> None:
    result = parse("Default", {"link": LINK, "quantity": 10, "runs": runs, "interval": interval})
    assert result.charged_units == 10 * int(str(runs))


def test_each_run_of_a_drip_feed_is_bounded_by_the_service_limits() -> None:
    # 5 x 10 = 50 would fit in 10..1000, but each run must.
    params = {"link": LINK, "quantity": "5", "runs": "10", "interval": "30"}
    assert refusal("Default", params) == TOO_FEW
    params = {"link": LINK, "quantity": "1000", "runs": "10", "interval": "30"}
    assert parse("Default", params).charged_units == 10_000


def test_drip_feed_parameters_are_ignored_by_types_that_do_not_take_them() -> None:
    params = {**VALID_BY_TYPE["Poll"], "runs": "5", "interval": "30"}
    result = parse("Poll", params, dripfeed=False)

    assert (result.runs, result.interval, result.charged_units) == (None, None, 25)
    assert "runs" not in result.upstream_params()


# --- Subscriptions ----------------------------------------------------------------------------


def subscription(**changes: object) -> dict[str, object]:
    params: dict[str, object] = {"username": "someone", "min": "20", "max": "40", "delay": "0",
                                 "posts": "5"}
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


@pytest.mark.parametrize("delay", SUBSCRIPTION_DELAYS)
def test_every_listed_subscription_delay_is_accepted(delay: int) -> None:
    assert parse("Subscriptions", subscription(delay=str(delay))).extra["delay"] == str(delay)


@pytest.mark.parametrize("delay", ["1", "7", "20", "601", "1000", "-5", "abc", "30.0", "", None])
def test_any_other_subscription_delay_is_an_incorrect_request(delay: object) -> None:
    params = {**subscription(), "delay": delay}
    assert refusal("Subscriptions", params) == "Incorrect request"


def test_a_subscription_charges_max_for_each_post_it_covers() -> None:
    result = parse("Subscriptions", subscription(posts="5", old_posts="3"))

    assert (result.quantity, result.charged_units) == (40, 40 * 8)
    assert (result.link, result.runs, result.interval) == ("", None, None)
    assert result.upstream_params() == {"username": "someone", "min": "20", "max": "40",
                                        "delay": "0", "posts": "5", "old_posts": "3"}


@pytest.mark.parametrize(("posts", "old_posts", "covered"), [
    (None, None, 7), ("", "", 7), (None, "0", 7), ("", 0, 7), (None, "4", 11), (" ", 4, 11),
])
def test_a_subscription_without_posts_covers_the_default_number_of_posts(
        posts: object, old_posts: object, covered: int) -> None:
    # Upstreams read a missing `posts` as every future post, a charge with no upper bound:
    # the panel sends the default number instead, and charges for that many.
    params = subscription(posts=None, old_posts=old_posts)
    if posts is not None:
        params["posts"] = posts

    result = parse("Subscriptions", params, default_posts=7)

    assert result.charged_units == 40 * covered
    assert result.upstream_params()["posts"] == "7"


def test_a_subscription_with_posts_ignores_the_default_number() -> None:
    result = parse("Subscriptions", subscription(posts="5"), default_posts=7)
    assert (result.charged_units, result.extra["posts"]) == (40 * 5, "5")


@pytest.mark.parametrize("default_posts", [0, -1, 10_001])
def test_a_default_number_of_posts_outside_the_post_limits_is_a_programming_error(
        default_posts: int) -> None:
    with pytest.raises(ValueError, match="default_posts"):
        parse("Subscriptions", subscription(posts=None), default_posts=default_posts)


@pytest.mark.parametrize(("posts", "old_posts"), [
    ("0", None), ("-1", None), ("10001", None), ("abc", None), ("5", "-1"), ("5", "10001"),
    ("5", "x"),
])
def test_subscription_post_counts_must_be_in_range(posts: object, old_posts: object) -> None:
    params = subscription(posts=posts, old_posts=old_posts)
    assert refusal("Subscriptions", params) == "Incorrect request"


def test_subscription_min_and_max_are_checked_against_each_other_and_the_service() -> None:
    assert refusal("Subscriptions", subscription(min="50", max="40")) == "Incorrect request"
    assert refusal("Subscriptions", subscription(min="9", max="40")) == TOO_FEW
    assert refusal("Subscriptions", subscription(min="20", max="1001")) == TOO_MANY
    assert refusal("Subscriptions", subscription(min="0", max="40")) == "Incorrect request"
    assert refusal("Subscriptions", subscription(min="twenty")) == "Incorrect request"
    same = parse("Subscriptions", subscription(min="10", max="10", posts="1"))
    assert (same.quantity, same.charged_units) == (10, 10)


@pytest.mark.parametrize(("expiry", "normalised"), [
    ("25/12/2026", "25/12/2026"), ("5/1/2027", "05/01/2027"), (" 01/06/2026 ", "01/06/2026"),
    ("29/2/2028", "29/02/2028"),
])
def test_subscription_expiry_is_a_day_month_year_date_kept_zero_padded(
    expiry: str, normalised: str,
) -> None:
    assert parse("Subscriptions", subscription(expiry=expiry)).extra["expiry"] == normalised


@pytest.mark.parametrize("expiry", [
    "31/05/2026", "1/1/2020", "2026-12-25", "12/25/2026", "31/02/2027", "29/2/2027",
    "25/12/26", "25.12.2026", "25/12/2026 10:00", "٢٥/١٢/٢٠٢٦", "00/01/2027", "1/1/0000",
    "tomorrow",
])
def test_a_past_or_malformed_expiry_is_an_incorrect_request(expiry: str) -> None:
    assert refusal("Subscriptions", subscription(expiry=expiry)) == "Incorrect request"


def test_expiry_is_judged_against_the_real_today_when_none_is_given() -> None:
    today = date.today()
    params = subscription(expiry=f"{today.day}/{today.month}/{today.year}")
    assert parse_order("Subscriptions", params, min_quantity=1, max_quantity=100, dripfeed=False)
    yesterday = today - timedelta(days=1)
    params = subscription(expiry=f"{yesterday.day}/{yesterday.month}/{yesterday.year}")
    with pytest.raises(Refusal):
        parse_order("Subscriptions", params, min_quantity=1, max_quantity=100, dripfeed=False)


def test_a_subscription_username_is_text_up_to_500_characters() -> None:
    assert parse("Subscriptions", subscription(username=" @юзер ")).extra["username"] == "@юзер"
    assert refusal("Subscriptions", subscription(username="u" * 501)) == "Incorrect request"
    assert refusal("Subscriptions", subscription(username="\n")) == "Incorrect request"


# --- any input --------------------------------------------------------------------------------

PARAM_NAMES = ["link", "quantity", "runs", "interval", "comments", "usernames", "hashtags",
               "hashtag", "username", "media", "answer_number", "groups", "min", "max", "posts",
               "old_posts", "delay", "expiry", "junk"]
PLAUSIBLE = ["https://instagram.com/p/x", "http://a.b", "100", "10", "0", "2", "5", "30", "1000",
             "a\nb\r\nc", "5/1/2027", "01/01/2020", "-1", "", " ", "1e3", "\r\n"]
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(PLAUSIBLE),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.lists(st.one_of(st.text(max_size=20), st.sampled_from(PLAUSIBLE)), max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(
    example=st.sampled_from(VALID),
    dropped=st.sets(st.sampled_from(PARAM_NAMES), max_size=3),
    noise=st.dictionaries(st.sampled_from(PARAM_NAMES), values, max_size=4),
    low=st.integers(min_value=1, max_value=50),
    span=st.integers(min_value=0, max_value=5000),
    dripfeed=st.booleans(),
)
def test_any_input_gives_a_bounded_request_or_a_client_error(
    example: tuple[str, dict[str, object], OrderRequest, dict[str, str]], dropped: set[str],
    noise: dict[str, object], low: int, span: int, dripfeed: bool,
) -> None:
    # Valid orders with a few parameters dropped or replaced, so that both outcomes happen often.
    service_type, valid = example[0], example[1]
    params = {**{k: v for k, v in valid.items() if k not in dropped}, **noise}
    try:
        result = parse_order(service_type, params, min_quantity=low, max_quantity=low + span,
                             dripfeed=dripfeed, today=TODAY)
    except Refusal as error:
        assert error.message
        return
    assert result.charged_units >= 1
    if service_type in FLAT_TYPES:
        assert result.quantity == result.charged_units == 1
    else:
        assert low <= result.quantity <= low + span
    assert all(isinstance(value, str) for value in result.upstream_params().values())


@settings(max_examples=200, deadline=None)
@given(
    service_type=st.sampled_from(SERVICE_TYPES),
    params=st.dictionaries(st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=10)),
                           st.text(), max_size=12),
    dripfeed=st.booleans(),
)
def test_arbitrary_text_parameters_never_raise_anything_but_a_client_error(
    service_type: str, params: dict[str, str], dripfeed: bool,
) -> None:
    try:
        result = parse_order(service_type, params, min_quantity=1, max_quantity=10**6,
                             dripfeed=dripfeed, today=TODAY)
    except Refusal:
        return
    assert result.charged_units >= 1
    assert 1 <= result.quantity <= 10**6


def test_the_models_service_types_are_the_ones_parsed() -> None:
    from orders.models import ServiceType

    assert set(ServiceType.values) == set(SERVICE_TYPES)
