# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fast reader of EC2 DescribeInstances answers (standard library only).

botocore turns every element of an answer into Python objects by walking the service model
in pure Python: about 0.4 s per 500 instances here, with the GIL held, so parallel regions
queue behind each other. The inventory reads a few dozen fields per instance. This module
copies only those fields, in the shape botocore would give them (same key names and types;
``LaunchTime`` as the ISO 8601 text that ``datetime.isoformat()`` of botocore's value gives).
Two readers give the same result: the plain reader (C-speed splits and regular expressions,
no tree) reads a page in the plain form AWS sends and proves it is; any other well-formed page
goes to the tree reader (expat builds the element tree, the fields are copied from it).

Only the fields listed here exist in the result; the inventory documents the same subset.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import xml.etree.ElementTree as ET

# XML element name -> botocore key, for the plain string fields of an Instance
INSTANCE_STRINGS = {
    "instanceId": "InstanceId",
    "instanceType": "InstanceType",
    "imageId": "ImageId",
    "architecture": "Architecture",
    "platform": "Platform",
    "vpcId": "VpcId",
    "subnetId": "SubnetId",
    "privateIpAddress": "PrivateIpAddress",
    "ipAddress": "PublicIpAddress",
    "privateDnsName": "PrivateDnsName",
    "dnsName": "PublicDnsName",
    "keyName": "KeyName",
}
PLACEMENT_STRINGS = {"availabilityZone": "AvailabilityZone", "tenancy": "Tenancy"}
PROFILE_STRINGS = {"arn": "Arn", "id": "Id"}
# The largest parts of an instance that the inventory never reads: cut out of the bytes before
# expat sees them (more than half of a page). None nests in itself or carries attributes.
# Each name costs a search through the page, so only parts with several elements are worth it;
# secondaryInterfaceSet (none in moto's answers; last, so its search runs on the cut page) holds
# another privateIpAddress, which the plain reader must find once per instance.
UNREAD_ELEMENTS = (b"networkInterfaceSet", b"blockDeviceMapping", b"metadataOptions",
                   b"secondaryInterfaceSet")


class NotDescribeInstances(ValueError):
    """The body is not a DescribeInstances answer this reader understands."""


def iso_timestamp(text):
    """'2026-11-28T13:16:21.000Z' -> '2026-11-28T13:16:21+00:00', as botocore's datetime prints."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return text  # an unexpected format: keep AWS's text rather than guess
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc).isoformat()


def drop_unread(body, names=UNREAD_ELEMENTS):
    """The body without the ``<name>...</name>`` elements of ``names`` (C-speed byte search).

    Sound for XML without CDATA sections or comments (a literal ``<`` can appear nowhere else);
    a body that has either, or an unclosed element, is returned unchanged.
    """
    # a byte search for "!" runs at memory speed; "<![CDATA[" would take 1 ms per page
    if b"!" in body and (b"<![CDATA[" in body or b"<!--" in body):
        return body
    whole = body
    for name in names:
        opening, closing = b"<" + name + b">", b"</" + name + b">"
        found = body.find(opening)
        if found < 0:
            continue
        kept, parts, start = memoryview(body), [], 0  # the kept parts are copied once, by join
        while found >= 0:
            end = body.find(closing, found)
            if end < 0:
                return whole
            parts.append(kept[start:found])
            start = end + len(closing)
            found = body.find(opening, start)
        parts.append(kept[start:])
        body = b"".join(parts)
    return body


class _Names:
    """The element names of one namespace, qualified once (``{ns}instanceId``) so that the copy
    compares the parser's own tag strings instead of slicing every tag."""

    def __init__(self, namespace):
        def qualified(names):
            return {namespace + tag: key for tag, key in names.items()}

        self.strings_keys = qualified(INSTANCE_STRINGS)
        self.placement_keys = qualified(PLACEMENT_STRINGS)
        self.group_keys = qualified({"groupId": "GroupId", "groupName": "GroupName"})
        self.profile_keys = qualified(PROFILE_STRINGS)
        for name in ("reservationSet", "ownerId", "instancesSet", "nextToken"):
            setattr(self, name, namespace + name)
        for name in ("key", "value", "code", "name"):
            setattr(self, name + "_tag", namespace + name)
        # what to do with each child of an instance that is read: the botocore key of a plain
        # string (copied inline: a call per field cost more than the rest of the copy), or the
        # function that copies a part; the other children are skipped with a dictionary lookup
        self.instance_children = dict(self.strings_keys)
        for tag, copy in (("tagSet", _copy_tags), ("instanceState", _copy_state),
                          ("placement", _copy_placement), ("groupSet", _copy_groups),
                          ("iamInstanceProfile", _copy_profile),
                          ("launchTime", _copy_launch_time)):
            self.instance_children[namespace + tag] = copy


def _fields(element, names):
    fields = {}
    for child in element:
        key = names.get(child.tag)
        if key is not None and child.text is not None:
            fields[key] = child.text
    return fields


def _copy_tags(instance, element, names, timestamps):
    key_tag, value_tag = names.key_tag, names.value_tag
    tags = []
    for item in element:
        key = value = None
        for field in item:  # as _fields(): the last element with a text wins
            tag = field.tag
            if tag == key_tag:
                if field.text is not None:
                    key = field.text
            elif tag == value_tag and field.text is not None:
                value = field.text
        if key is not None:
            tags.append({"Key": key, "Value": "" if value is None else value})
    instance["Tags"] = tags


def _copy_state(instance, element, names, timestamps):
    state = {}
    for field in element:
        tag, text = field.tag, field.text
        if text is None:
            continue
        if tag == names.code_tag:
            state["Code"] = text
        elif tag == names.name_tag:
            state["Name"] = text
    if "Code" in state:
        try:
            state["Code"] = int(state["Code"])
        except ValueError:
            del state["Code"]
    instance["State"] = state


def _copy_placement(instance, element, names, timestamps):
    instance["Placement"] = _fields(element, names.placement_keys)


def _copy_groups(instance, element, names, timestamps):
    instance["SecurityGroups"] = [_fields(item, names.group_keys) for item in element]


def _copy_profile(instance, element, names, timestamps):
    instance["IamInstanceProfile"] = _fields(element, names.profile_keys)


def _copy_launch_time(instance, element, names, timestamps):
    text = element.text
    if text:
        try:
            instance["LaunchTime"] = timestamps[text]
        except KeyError:  # instances launched together share one text
            instance["LaunchTime"] = timestamps[text] = iso_timestamp(text)


def _instance(element, names, timestamps):
    instance = {}
    wanted = names.instance_children.get
    for child in element:
        action = wanted(child.tag)
        if action is None:
            continue
        if action.__class__ is str:
            text = child.text
            if text is not None:
                instance[action] = text
        else:
            action(instance, child, names, timestamps)
    return instance


def _read_tree(body):
    """The result of parse_describe_instances() from expat's element tree (any page)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise NotDescribeInstances("not XML: %s" % exc) from None
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag[len(namespace):] != "DescribeInstancesResponse":
        raise NotDescribeInstances("root element is %s" % root.tag)
    names = _Names(namespace)
    timestamps = {}
    result = {"Reservations": []}
    for child in root:
        tag = child.tag
        if tag == names.reservationSet:
            for item in child:
                reservation = {"Instances": []}
                for part in item:
                    if part.tag == names.ownerId and part.text is not None:
                        reservation["OwnerId"] = part.text
                    elif part.tag == names.instancesSet:
                        reservation["Instances"] = [_instance(instance, names, timestamps)
                                                    for instance in part]
                result["Reservations"].append(reservation)
            child.clear()  # the reservations are copied: let the elements go
        elif tag == names.nextToken and child.text:
            result["NextToken"] = child.text
    return result


# The plain reader.
#
# Building the element tree is most of what the tree reader costs (about 27,000 elements for
# 500 instances, after the cut). The plain reader finds the fields it needs with one regular
# expression per instancesSet instead, after proving that the page is in the plain form, in
# which that is exact:
# - after the root's start tag, every tag is <name>, </name> or <name/>: no comment, CDATA,
#   DOCTYPE, processing instruction, attribute or whitespace inside a tag (what would make a
#   "<" or a field name mean something else), no carriage return (expat rewrites it);
# - UTF-8, and no entity but XML's five and character references;
# - a reservation's own children are leaf elements (besides its groupSet's items) around one
#   instancesSet; instances are the items of that instancesSet;
# - within an instance, each field read appears once, and the parts read (tags, security
#   groups, state, placement, profile) hold what the reader expects.
# What the plain reader cannot prove it leaves to the tree reader (_NeedsTree): the result is
# the same, only slower. Two things it takes from botocore's EC2 output model instead of
# checking: that the fields read occur nowhere in an instance but directly under it (after the
# cut of UNREAD_ELEMENTS; the unit tests check this against the installed botocore's model; a
# field found twice sends the page to the tree reader, but one nested in an element the model
# does not have, in an instance without its own, would be read as the instance's), and that
# what it does not read is well-formed (expat would reject the page for an error there).

class _NeedsTree(Exception):
    """The page is not in the plain form, or not proven to be: the tree reader reads it."""


def _alternation(names):
    return "|".join(sorted(names, key=len, reverse=True))


_ROOT = re.compile(rb'\s*(?:<\?xml version="1\.[0-9]"(?: encoding="(?i:utf-8)")?'
                   rb'(?: standalone="(?:yes|no)")?\s*\?>)?\s*'
                   rb'<DescribeInstancesResponse(?: xmlns="[^"<>&]*")?>')
_ROOT_END = "</DescribeInstancesResponse>"
# Kept by the lexical check: what can make a tag more than <name>, </name> or <name/>.
_NOT_MARKUP = bytes(sorted(set(range(256)) - set(b"<>/=\"'!? \t\n")))
_NAME = "[A-Za-z][A-Za-z0-9]*"
# a run of leaf elements, and its parts (re.split: text between, name, text, ...)
_FLAT = re.compile(r"(?:\s*<(%s)(?:/>|>[^<]*</\1>))*\s*" % _NAME)
_LEAF = re.compile(r"<(%s)>([^<]*)</\1>" % _NAME)
_ITEM_TOKENS = re.compile(r"(</?item>)")
_ITEM_STEP = {"<item>": 1, "</item>": -1}
_LEAF_FIELDS = list(INSTANCE_STRINGS) + ["launchTime"]
_PART_FIELDS = ["tagSet", "groupSet", "instanceState", "placement", "iamInstanceProfile"]
_TAG_ITEM = r"\s*<item>\s*<key>([^<]*)</key>\s*(?:<value>([^<]*)</value>\s*|<value/>\s*)?</item>"
_GROUP_ITEM = (r"\s*<item>\s*(?:<groupId>([^<]*)</groupId>\s*|<groupId/>\s*)?"
               r"(?:<groupName>([^<]*)</groupName>\s*|<groupName/>\s*)?</item>")
# Every field of an instance read, as (name, raw content), in the order of the page, and
# ("", "") between two instances. The content is a leaf's text, or tag items (the common part,
# matched literally), or anything up to the element's end tag. _plain_instances rejects an
# instance with a field twice or without instanceId, which is what an item boundary inside a
# list this reader does not know, or a field nested where the model has none, would give.
_STRICT_TAG_ITEM = r"<item>\s*<key>([^<]*)</key>\s*<value>([^<]*)</value>\s*</item>"
_FIELDS = re.compile(r"<(%s)(?:>([^<]*|(?:\s*%s)*\s*|(?:[^<]+|<(?!/\1>))*)</\1>|/>)"
                     r"|</item>\s*<item>" % (_alternation(_LEAF_FIELDS + _PART_FIELDS),
                                             _STRICT_TAG_ITEM.replace("([^<]*)", "[^<]*")))
_BETWEEN_INSTANCES = ("", "")
_SPACE = " \t\n\r"  # XML's whitespace
_TAG_ITEMS = re.compile(_TAG_ITEM)
_GROUP_ITEMS = re.compile(_GROUP_ITEM)
_STRICT_TAG_ITEMS = re.compile(_STRICT_TAG_ITEM)
# a tag item in that form as _plain_tags sees it: the text between two "</item>"
_TAG_ITEM_TEXT = re.compile(r"\s*" + _STRICT_TAG_ITEM[:-len("</item>")])
_STRICT_GROUP_ITEMS = re.compile(r"<item>\s*<groupId>([^<]*)</groupId>\s*<groupName>([^<]*)"
                                 r"</groupName>\s*</item>")
_STRING_KEY = INSTANCE_STRINGS.get
_PLACEMENT_FIELDS = tuple(PLACEMENT_STRINGS.items())
_PROFILE_FIELDS = tuple(PROFILE_STRINGS.items())
_STATE = re.compile(r"\s*<code>([^<]*)</code>\s*<name>([^<]*)</name>\s*")
_ENTITY = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));")
_NAMED_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _character(match):
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED_ENTITIES[named]
    code = int(decimal, 10) if decimal else int(hexadecimal, 16)
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD \
            or 0x10000 <= code <= 0x10FFFF:
        return chr(code)
    raise _NeedsTree("a character reference that XML does not allow")


def _unescape(raw):
    """A text as expat gives it (raw text holds no "<")."""
    if "&" not in raw:
        return raw
    if "&" in _ENTITY.sub("", raw):
        raise _NeedsTree("an entity other than XML's own")
    return _ENTITY.sub(_character, raw)


def _keep(raw):
    return raw


def _check_plain(cut, start):
    """_NeedsTree unless every tag after ``start`` is <name>, </name> or <name/>.

    With every other byte deleted, such tags become "<>" and "</>", and text keeps no "<"; a
    comment, CDATA, DOCTYPE, processing instruction, attribute or whitespace in a tag leaves a
    "<" followed by something else. One translate and three counts, at memory speed.
    """
    if b"\r" in cut:
        raise _NeedsTree("a carriage return")
    markup = cut[start:].translate(None, _NOT_MARKUP)
    if markup.count(b"<") != markup.count(b"<>") + markup.count(b"</>"):
        raise _NeedsTree("a tag that is not <name>, </name> or <name/>")


def _flat(raw, what):
    """{name: text} of a run of leaf elements, empty texts left out (the last text wins)."""
    if _FLAT.fullmatch(raw) is None:
        raise _NeedsTree("%s holds more than leaf elements" % what)
    return {name: text for name, text in _LEAF.findall(raw) if text}


def _items(strict, pattern, raw, what):
    """The (first, second) texts of each item of a list of items of ``pattern``'s form.

    ``strict`` is the same form with both texts present: when its matches account for every
    "<" of the list (6 each), they are all of it; otherwise re.split checks that nothing but
    whitespace lies between the items of the general form.
    """
    found = strict.findall(raw)
    if raw.count("<") == 6 * len(found):
        return found
    parts = pattern.split(raw)
    if "".join(parts[::3]).strip():
        raise _NeedsTree("%s in another form" % what)
    return [(first or "", second or "") for first, second in zip(parts[1::3], parts[2::3])]


def _plain_state(raw, text):
    match = _STATE.fullmatch(raw)
    if match is not None:
        code, name = match.groups()
    else:
        leaves = _flat(raw, "instanceState")
        code, name = leaves.get("code"), leaves.get("name")
    state = {}
    if code:
        with contextlib.suppress(ValueError):  # as the tree reader: not a number, left out
            state["Code"] = int(text(code))
    if name:
        state["Name"] = text(name)
    return state


def _plain_groups(raw, text):
    groups = []
    for group_id, group_name in _items(_STRICT_GROUP_ITEMS, _GROUP_ITEMS, raw,
                                       "security group items"):
        group = {}
        if group_id:
            group["GroupId"] = text(group_id)
        if group_name:
            group["GroupName"] = text(group_name)
        groups.append(group)
    return groups


def _plain_placement(raw, text):
    return _plain_leaves(raw, "placement", _PLACEMENT_FIELDS, text)


def _plain_profile(raw, text):
    return _plain_leaves(raw, "iamInstanceProfile", _PROFILE_FIELDS, text)


def _plain_leaves(raw, what, keys, text):
    leaves = _flat(raw, what)
    return {key: text(leaves[leaf]) for leaf, key in keys if leaf in leaves}


# The parts that many instances of a page share word for word (state, placement, security
# groups, instance profile): read once per page, keyed by their raw text, and the same object
# for all of them (see parse_describe_instances: the result is read-only).
_SHARED_PARTS = (("instanceState", "State", _plain_state),
                 ("placement", "Placement", _plain_placement),
                 ("groupSet", "SecurityGroups", _plain_groups),
                 ("iamInstanceProfile", "IamInstanceProfile", _plain_profile))


class _PageMemo:
    """What the instances of one page have in common, each read once: launch times (by their
    text), tags (by their raw key and value, and tag items by their text) and the shared parts
    (one dict per part, by its raw text)."""

    __slots__ = ("launch_times", "parts", "tag_items", "tags")

    def __init__(self):
        self.launch_times, self.tags, self.tag_items = {}, {}, {}
        self.parts = tuple((field, key, read, {}) for field, key, read in _SHARED_PARTS)


# what memo.tag_items.get() gives for an item not seen yet (an item with an empty key is None);
# misses are the rule for the Name tag, and a lookup costs them less than a KeyError
_UNSEEN = object()


def _plain_tags(raw, text, memo):
    """The tag list of an instance; a tag that other instances of the page have word for word
    (their reservation's Env, Team...) is the same dict for all of them.

    The list is split at each "</item>" and every item's text looked up as it stands: only an
    item not seen before on the page is matched (_TAG_ITEM_TEXT). A list with text after its
    last item, or an item in another form (``<value/>``, no value...), is read by _item_tags
    instead."""
    items = raw.split("</item>")
    if items.pop().strip():
        return _item_tags(raw, text, memo)
    tags, seen = [], memo.tag_items
    for item in items:
        tag = seen.get(item, _UNSEEN)
        if tag is _UNSEEN:
            match = _TAG_ITEM_TEXT.fullmatch(item)
            if match is None:
                return _item_tags(raw, text, memo)
            key, value = match.groups()
            tag = seen[item] = _shared_tag(key, value, text, memo) if key else None
        if tag is not None:
            tags.append(tag)
    return tags


def _shared_tag(key, value, text, memo):
    """The page's one dict for a tag, by its raw key and value texts."""
    tag = memo.tags.get((key, value))
    if tag is None:
        tag = memo.tags[key, value] = {"Key": text(key), "Value": text(value)}
    return tag


def _item_tags(raw, text, memo):
    """_plain_tags for a tag list in any form _items reads."""
    return [_shared_tag(key, value, text, memo)
            for key, value in _items(_STRICT_TAG_ITEMS, _TAG_ITEMS, raw, "tag items") if key]


def _plain_instance(fields, memo, text):
    """One instance, from its fields; ``memo`` holds what this page has read already, so that
    instances launched together, tagged or placed alike cost one reading."""
    instance = {key: raw for key, raw in zip(map(_STRING_KEY, fields), fields.values())
                if key and raw}
    if "<" in "".join(instance.values()):
        raise _NeedsTree("a field that holds elements")
    if text is not _keep:
        instance = {key: text(raw) for key, raw in instance.items()}
    get = fields.get
    raw = get("launchTime")
    if raw:
        try:
            instance["LaunchTime"] = memo.launch_times[raw]
        except KeyError:  # instances launched together share one text
            if "<" in raw:
                raise _NeedsTree("launchTime holds elements") from None
            instance["LaunchTime"] = memo.launch_times[raw] = iso_timestamp(text(raw))
    raw = get("tagSet")
    if raw is not None:
        instance["Tags"] = _plain_tags(raw, text, memo)
    for field, key, read, shared in memo.parts:
        raw = get(field)
        if raw is not None:
            try:
                instance[key] = shared[raw]
            except KeyError:
                instance[key] = shared[raw] = read(raw, text)
    return instance


def _plain_instances(page, start, end, memo, text):
    """The instances of the instancesSet whose content is ``page[start:end]`` (read in place,
    not copied)."""
    while start < end and page[start] in _SPACE:
        start += 1
    while end > start and page[end - 1] in _SPACE:
        end -= 1
    if start == end:
        return []
    if not (page.startswith("<item>", start, end) and page.endswith("</item>", start, end)):
        raise _NeedsTree("an instancesSet that holds more than items")
    found = _FIELDS.findall(page, start + len("<item>"), end - len("</item>"))
    found.append(_BETWEEN_INSTANCES)
    instances, first, last = [], 0, len(found)
    boundary = found.index
    while first < last:
        stop = boundary(_BETWEEN_INSTANCES, first)
        fields = dict(found[first:stop])
        # a field twice, or an instance without its id: an item boundary that is not between
        # two instances (a list of items this reader does not know), or a field nested where
        # the model has none
        if len(fields) != stop - first or not fields.get("instanceId"):
            raise _NeedsTree("an instance with a field twice or without instanceId")
        instances.append(_plain_instance(fields, memo, text))
        first = stop + 1
    return instances


def _reservation_parts(text, position, last):
    """A reservation-level text around instancesSets: (its part in the reservation that ends
    in it, its part in the one that starts in it), each without the items of a groupSet. The
    first text (position 0) only starts one, the last only ends one, every other ends one and
    starts the next."""
    parts = _ITEM_TOKENS.split(text)
    depth = 0 if position == 0 else 1
    own = ([], [])
    side = 0 if position else 1
    crossings = 0
    for index, part in enumerate(parts):
        if index % 2:
            depth += _ITEM_STEP[part]
            if depth < 0:
                raise _NeedsTree("unbalanced reservation items")
            if depth == 0 or (depth == 1 and part == "<item>"):
                crossings += 1
                if depth == 1:
                    side = 1
        elif depth == 1:
            own[side].append(part)
        elif depth == 0 and part.strip():
            raise _NeedsTree("text between reservations")
    if crossings != (1 if position == 0 or last else 2) or depth != (0 if last else 1):
        raise _NeedsTree("a reservation without exactly one instancesSet")
    return "".join(own[0]), "".join(own[1])


def _read_plain(cut):
    """The result of parse_describe_instances() for a page in the plain form, else _NeedsTree."""
    root = _ROOT.match(cut)
    if root is None:
        raise _NeedsTree("another root element or prolog")
    _check_plain(cut, root.end())
    try:
        page = cut.decode("utf-8")
    except UnicodeDecodeError:
        raise _NeedsTree("not UTF-8") from None
    start = len(cut[:root.end()].decode("utf-8"))
    end = page.rfind(_ROOT_END)
    if end < 0 or page[end + len(_ROOT_END):].strip():
        raise _NeedsTree("the root element does not end the page")
    text = _unescape if "&" in page else _keep
    opening = page.find("<reservationSet>", start, end)
    result = {"Reservations": []}
    if opening < 0:  # none, or <reservationSet/>
        top = _flat(page[start:end], "the answer")
    else:
        closing = page.rfind("</reservationSet>", opening, end)
        if closing < 0:
            raise _NeedsTree("reservationSet is not closed")
        top = _flat(page[start:opening] + page[closing + len("</reservationSet>"):end],
                    "the answer")
        # the instancesSets' contents by position (read in place), the texts around them
        sets, texts = [], []
        position = opening + len("<reservationSet>")
        while True:
            set_start = page.find("<instancesSet>", position, closing)
            if set_start < 0:
                texts.append(page[position:closing])
                break
            set_start += len("<instancesSet>")
            set_end = page.find("</instancesSet>", set_start, closing)
            if set_end < 0 or page.find("<instancesSet>", set_start, set_end) >= 0:
                raise _NeedsTree("an instancesSet not closed once")
            texts.append(page[position:set_start - len("<instancesSet>")])
            sets.append((set_start, set_end))
            position = set_end + len("</instancesSet>")
        if not sets and texts[0].strip():
            raise _NeedsTree("reservations without instancesSet")
        owns = [_reservation_parts(part, index, index == len(texts) - 1)
                for index, part in enumerate(texts)] if sets else []
        memo = _PageMemo()
        for index, (set_start, set_end) in enumerate(sets):  # reservation index
            own = _flat(owns[index][1] + owns[index + 1][0], "a reservation")
            reservation = {"Instances": _plain_instances(page, set_start, set_end, memo, text)}
            if "ownerId" in own:
                reservation["OwnerId"] = text(own["ownerId"])
            result["Reservations"].append(reservation)
    if "nextToken" in top:
        result["NextToken"] = text(top["nextToken"])
    return result


def parse_describe_instances(body):
    """{'Reservations': [{'OwnerId', 'Instances': [...]}], 'NextToken'?} from the raw XML.

    Raises NotDescribeInstances when the body is something else (an error document, another
    protocol); the caller then lets botocore parse it.

    The result is read-only: instances of a page that have a tag, state, placement, security
    group list or instance profile word for word alike share one dict or list for it (read
    once; ``marshal`` carries it once from a page reader process, and loads it once).
    """
    cut = drop_unread(body)
    try:
        return _read_plain(cut)
    except _NeedsTree:
        return _read_tree(cut)
