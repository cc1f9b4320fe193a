"""Who is using this session: a student's name, kept in the URL (``?student=``) and a cookie.

A first visit gets a guest name at once (so nothing waits for typing), which the sidebar lets the
student change; the name then follows them across reloads (the query parameter) and new tabs (the
cookie). Every run launched from the app carries it, for fair share and for "your runs".
"""

from __future__ import annotations

import json
import re
import secrets

import streamlit as st
import streamlit.components.v1 as components

STUDENT = "student"  # session-state key: this session's name
QUERY_STUDENT = "student"  # ?student=NAME
COOKIE = "cnnviz_student"
_EDITING = "student_editing"
_VALID = re.compile(r"[^\w .@-]+")


def clean_name(name: str | None) -> str:
    """A name as stored: letters, digits, spaces and ``.@-_`` only, at most 40 characters."""
    return _VALID.sub("", name).strip()[:40] if isinstance(name, str) else ""


def current_student() -> str:
    """This session's student: from the session, ``?student=``, the cookie, else a new guest name."""
    name = st.session_state.get(STUDENT)
    if not name:
        name = clean_name(st.query_params.get(QUERY_STUDENT)) or clean_name(_cookie())
        st.session_state[STUDENT] = name = name or f"guest-{secrets.token_hex(2)}"
    if st.query_params.get(QUERY_STUDENT) != name:
        st.query_params[QUERY_STUDENT] = name  # a reload or a copied link keeps the name
    return name


def set_student(name: str) -> None:
    """Make ``name`` this session's student (URL and cookie too)."""
    name = clean_name(name)
    if name:
        st.session_state[STUDENT] = name
        st.query_params[QUERY_STUDENT] = name
        _set_cookie(name)


def identity_widget() -> None:
    """"You are NAME" with a Change button (a text box and Save while changing)."""
    name = current_student()
    if not st.session_state.get(_EDITING):
        left, right = st.columns([3, 2])
        left.caption(f"You are **{name}**")
        if right.button("Change", key="student_change", help="Your runs are listed and shared fairly under this name."):
            st.session_state[_EDITING] = True
            st.rerun()
        return
    new = st.text_input("Your name", value=name, key="student_name_input", max_chars=40)
    if st.button("Save", key="student_save"):
        set_student(new)
        st.session_state[_EDITING] = False
        st.rerun()


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser context (a bare script run)
        return None
    return value if isinstance(value, str) else None  # AppTest has no real cookies


def _set_cookie(name: str) -> None:
    # Streamlit reads cookies but has no call to set one; the component's frame shares the app's origin.
    components.html(f"<script>window.parent.document.cookie = {json.dumps(f'{COOKIE}={name}')} + "
                    f"'; path=/; max-age=31536000; SameSite=Lax';</script>", height=0)
