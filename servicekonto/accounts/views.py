"""Placeholder routes (replaced by the accounts implementation)."""

from flask import Blueprint

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    return "login"


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    return "logout"


@bp.route("/register", methods=["GET", "POST"])
def register():
    return "register"


@bp.get("/account")
def overview():
    return "account"


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    return "forgot"
